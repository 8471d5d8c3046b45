"""The embedded demo: a miniature world (:mod:`.world`), the corpus drawn from it (:mod:`.corpus`),
the captioner trained on it (:mod:`.captioner`) and the base model pretrained on it (:mod:`.pretrain`).
"""

from tav_pipeline.demo.corpus import VIDEOS, DemoConfig, DemoVideo, build_corpus, demo_videos, make_video, true_cuts

__all__ = ["VIDEOS", "DemoConfig", "DemoVideo", "build_corpus", "demo_videos", "make_video", "true_cuts"]
