// Plays one LL-HLS stream with hls.js in lowLatencyMode in headless Chromium (playwright-core, the
// Debian chromium at $P2PLOADER_CHROMIUM), for the origin's LL-HLS test.
//
//   node llhls_origin.mjs URL SECONDS [PAGE_URL]
//
// With PAGE_URL the page is first opened there, so that it has that URL's origin: a server that
// sends no CORS headers (the local proxy) is then same-origin to hls.js.
// stdout, one JSON object a line: {"event": "sample", "currentTime": s, "latency": s, ...} every
// second, then {"event": "done", "errors": [...], "level": {...}, "stalls": n}.
import { createRequire } from "node:module";

const modules = process.env.P2PLOADER_BROWSER_NODE_MODULES;
const { chromium } = createRequire(`${modules}/`)("playwright-core");
const [url, seconds, pageUrl] = process.argv.slice(2);
const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const browser = await chromium.launch({
  executablePath: process.env.P2PLOADER_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--autoplay-policy=no-user-gesture-required", "--mute-audio", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => emit({ event: "pageerror", text: error.message }));
  if (pageUrl) await page.goto(pageUrl);
  await page.setContent('<video id="video" muted autoplay playsinline></video>');
  await page.addScriptTag({ path: `${modules}/hls.js/dist/hls.min.js` });
  await page.evaluate((source) => {
    const video = document.getElementById("video");
    const hls = new Hls({ lowLatencyMode: true });
    window.report = { errors: [], level: null, stalls: 0 };
    hls.on(Hls.Events.ERROR, (_event, data) => {
      window.report.errors.push(`${data.details} fatal=${data.fatal} ${data.response ? data.response.code : ""} ${data.reason || (data.error && data.error.message) || ""}`.trim());
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
      const details = data.details;
      window.report.level = {
        canBlockReload: details.canBlockReload,
        partTarget: details.partTarget,
        partHoldBack: details.partHoldBack,
        parts: (details.partList || []).length,
        preloadHint: Boolean(details.preloadHint),
        renditionReports: (details.renditionReports || []).length,
      };
    });
    video.addEventListener("waiting", () => {
      if (video.currentTime > 0) window.report.stalls += 1;
    });
    hls.loadSource(source);
    hls.attachMedia(video);
    window.hls = hls;
  }, url);
  for (let second = 0; second < Number(seconds); second += 1) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    emit({
      event: "sample",
      ...(await page.evaluate(() => ({
        currentTime: document.getElementById("video").currentTime,
        latency: window.hls.latency,
        targetLatency: window.hls.targetLatency,
      }))),
    });
  }
  emit({ event: "done", ...(await page.evaluate(() => window.report)) });
} finally {
  await browser.close();
}
