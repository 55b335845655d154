"""Tune the loader with P2P Media Loader's FAQ settings, pasted verbatim as JavaScript.

python examples/faq_config.py
"""

from __future__ import annotations

from p2ploader import LoaderConfig

FAQ_VOD = """
segments:{
  forwardSegmentCount:50,
},
loader:{
  cachedSegmentExpiration:86400000,
  cachedSegmentsCount:1000,
  requiredSegmentsPriority:3,
  httpDownloadMaxPriority:9,
  httpDownloadProbability:0.06,
  httpDownloadProbabilityInterval: 1000,
  httpDownloadProbabilitySkipIfNoPeers: true,
  p2pDownloadMaxPriority: 50,
  httpFailedSegmentTimeout:1000,
  simultaneousP2PDownloads:20,
  simultaneousHttpDownloads:3,
  httpDownloadInitialTimeout: 120000,
  httpDownloadInitialTimeoutPerSegment: 17000,
  httpDownloadRanges:true,
}
"""

if __name__ == "__main__":
    config = LoaderConfig.from_faq_text(FAQ_VOD)
    assert config == LoaderConfig.preset("faq-vod")
    print(config.evolve(simultaneous_http_downloads=2))
    print(config.to_faq())
