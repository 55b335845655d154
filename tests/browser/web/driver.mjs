// Drives headless Chromium for the browser interop tests and benchmark (playwright-core, no browser
// download: it launches the Debian chromium at $P2PLOADER_CHROMIUM).
//
// stdin, one JSON object a line:   {"cmd": "open", "name": "b1", "url": "http://127.0.0.1:.../web/index.html?cfg=...",
//                                   "grantMedia": true}
//                                  {"cmd": "close", "name": "b1"}
// stdout, one JSON object a line:  {"event": "launched", "version": "..."}
//                                  {"event": "opened" | "closed", "name": "b1"}
//                                  {"event": "report", "name": "b1", "data": {...}}   (what the page reports)
//                                  {"event": "console" | "pageerror", "name": "b1", "text": "..."}
//                                  {"event": "error", "text": "..."}
// When stdin ends, the browser is closed and the process exits, so it never outlives its parent.
import { createRequire } from "node:module";
import readline from "node:readline";

const modules = process.env.P2PLOADER_BROWSER_NODE_MODULES;
const { chromium } = createRequire(`${modules}/`)("playwright-core");

// From /work/shared/reference/browser-notes.md. WebRtcHideLocalIpsWithMdns off: host candidates are
// plain IP addresses, not .local names aiortc would have to resolve by multicast.
// --allow-loopback-in-peer-connection: 127.0.0.1 candidates, so peers on one host need no route.
const ARGS = [
  "--autoplay-policy=no-user-gesture-required",
  "--mute-audio",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--allow-loopback-in-peer-connection",
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
  "--disable-gpu",
  "--disable-dev-shm-usage",
];

const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const pages = new Map(); // name -> { context, page }

// P2PLOADER_CHROMIUM_ARGS: a JSON list of further flags (the testbed adds one making its page
// origin a secure context, as 127.0.0.1 is).
const EXTRA_ARGS = JSON.parse(process.env.P2PLOADER_CHROMIUM_ARGS || "[]");

const browser = await chromium.launch({
  executablePath: process.env.P2PLOADER_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [...ARGS, ...EXTRA_ARGS],
});
emit({ event: "launched", version: browser.version() });

async function open(name, url, grantMedia) {
  const context = await browser.newContext();
  // Chromium offers its real host addresses (127.0.0.1 included, with the flag above) only when the
  // page may capture audio or video; otherwise it offers .local mDNS names of its non-loopback
  // addresses, and on a host with no default route nothing at all. Nothing is captured.
  if (grantMedia !== false) {
    await context.grantPermissions(["microphone", "camera"], { origin: new URL(url).origin });
  }
  const page = await context.newPage();
  await page.exposeFunction("p2ploaderReport", (data) => emit({ event: "report", name, data }));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") emit({ event: "console", name, text: msg.text() });
  });
  page.on("pageerror", (error) => emit({ event: "pageerror", name, text: String(error) }));
  pages.set(name, { context, page });
  await page.goto(url);
  emit({ event: "opened", name });
}

async function close(name) {
  const entry = pages.get(name);
  if (!entry) return;
  pages.delete(name);
  await entry.context.close();
  emit({ event: "closed", name });
}

let queue = Promise.resolve(); // commands run one after another, in order
const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  queue = queue.then(async () => {
    try {
      const command = JSON.parse(line);
      if (command.cmd === "open") await open(command.name, command.url, command.grantMedia);
      else if (command.cmd === "close") await close(command.name);
      else emit({ event: "error", text: `unknown command ${line}` });
    } catch (error) {
      emit({ event: "error", text: String(error) });
    }
  });
});
input.on("close", () => {
  queue.then(async () => {
    await browser.close();
    process.exit(0);
  });
});
