// A P2P Media Loader 2.3.1 viewer (hls.js + p2p-media-loader-hlsjs), instrumented for the tests.
//
// Configuration comes from the page URL: ?cfg=<JSON> with
//   src   the master playlist URL,
//   core  the P2P Media Loader core config (announceTrackers, rtcConfig, time windows, ...),
//   hls   extra hls.js config,
//   level the hls.js level to lock (each level is its own swarm).
// Everything the page learns goes to window.p2ploaderReport(object), a binding that the driver
// (driver.mjs) installs before any script runs; without it (a page opened by hand) reports go to
// the console.
import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";

const cfg = JSON.parse(new URLSearchParams(location.search).get("cfg") || "{}");
const report = (message) => {
  if (typeof window.p2ploaderReport === "function") window.p2ploaderReport(message);
  else console.log(JSON.stringify(message));
};

const totals = {
  httpBytes: 0,
  p2pBytes: 0,
  uploadedBytes: 0,
  p2pByPeer: {},
  uploadedByPeer: {},
  peers: [],
  stalls: 0,
  waiting: 0,
  playing: false,
  segments: 0,
};

async function sha256(data) {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The validation hooks see every segment's bytes before the player does, by source: the page hashes
// them so the test can compare each one with the origin's file.
function validator(source) {
  return async (url, byteRange, data) => {
    totals.segments += 1;
    report({ type: "segment", source, url, size: data.byteLength, sha256: await sha256(data) });
    return true;
  };
}

const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
const video = document.getElementById("video");
const hls = new HlsWithP2P({
  ...(cfg.hls || {}),
  p2p: {
    core: {
      ...(cfg.core || {}),
      validateP2PSegment: validator("p2p"),
      validateHTTPSegment: validator("http"),
    },
    onHlsJsCreated(instance) {
      const engine = instance.p2pEngine;
      engine.addEventListener("onPeerConnect", ({ peerId, streamType }) => {
        if (!totals.peers.includes(peerId)) totals.peers.push(peerId);
        report({ type: "peer", event: "connect", peerId, streamType });
      });
      engine.addEventListener("onPeerClose", ({ peerId, streamType }) => {
        totals.peers = totals.peers.filter((p) => p !== peerId);
        report({ type: "peer", event: "close", peerId, streamType });
      });
      engine.addEventListener("onChunkDownloaded", (bytes, source, peerId) => {
        if (source === "p2p") {
          totals.p2pBytes += bytes;
          totals.p2pByPeer[peerId] = (totals.p2pByPeer[peerId] || 0) + bytes;
        } else {
          totals.httpBytes += bytes;
        }
      });
      engine.addEventListener("onChunkUploaded", (bytes, peerId) => {
        totals.uploadedBytes += bytes;
        totals.uploadedByPeer[peerId] = (totals.uploadedByPeer[peerId] || 0) + bytes;
      });
      engine.addEventListener("onSegmentLoaded", (d) => {
        report({ type: "loaded", url: d.segmentUrl, source: d.downloadSource, peerId: d.peerId || null, size: d.bytesLength });
      });
      engine.addEventListener("onTrackerError", (d) => report({ type: "tracker-error", message: String(d.error) }));
      engine.addEventListener("onPeerError", (d) => report({ type: "peer-error", peerId: d.peerId, message: String(d.error) }));
    },
  },
});

hls.on(Hls.Events.ERROR, (event, data) => {
  if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && totals.playing) totals.stalls += 1;
  if (data.fatal) report({ type: "fatal", details: data.details });
});
hls.on(Hls.Events.MANIFEST_PARSED, () => {
  // Each level is its own swarm: lock the one the Python peers load (no ABR switching).
  if (typeof cfg.level === "number") hls.currentLevel = cfg.level;
  video.play().catch((error) => report({ type: "fatal", details: `play(): ${error}` }));
});
video.addEventListener("playing", () => {
  totals.playing = true;
});
video.addEventListener("waiting", () => {
  if (totals.playing) totals.waiting += 1;
});

function bufferedAhead() {
  const t = video.currentTime;
  for (let i = 0; i < video.buffered.length; i += 1) {
    if (video.buffered.start(i) <= t + 0.1 && t <= video.buffered.end(i)) return video.buffered.end(i) - t;
  }
  return 0;
}

// A snapshot of the figures twice a second; the last one before close is the page's result.
setInterval(() => {
  report({
    type: "stats",
    ...totals,
    currentTime: video.currentTime,
    bufferedAhead: bufferedAhead(),
    latency: hls.latency,
    liveSyncDurationCount: hls.config.liveSyncDurationCount,
  });
}, 500);

hls.loadSource(cfg.src);
hls.attachMedia(video);
report({ type: "started", userAgent: navigator.userAgent });
