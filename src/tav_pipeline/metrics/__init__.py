"""Metrics of generated videos (paper section 5).

- :mod:`.segments`: average segments (scenes per video, counted with :mod:`tav_pipeline.detectors`),
  plus requested scenes, exact-count accuracy and where the cut falls. Needs no torch.
- :mod:`.vbench`: the four VBench dimensions of Table 2 through the ``vbench`` package.
- :mod:`.standin_weights`: random weights in vbench's formats, for tests and the offline demo.

Only :mod:`.segments` is imported here; the VBench modules import torch and vbench when used.
"""

from tav_pipeline.metrics.segments import (
    REQUESTED_SCENES,
    GeneratedVideo,
    SegmentsConfig,
    count_segments,
    evaluate_segments,
    read_generated,
    summarise_segments,
)

__all__ = [
    "REQUESTED_SCENES",
    "GeneratedVideo",
    "SegmentsConfig",
    "count_segments",
    "evaluate_segments",
    "read_generated",
    "summarise_segments",
]
