"""Metrics of generated videos (paper section 5).

- :mod:`.segments`: average segments (scenes per video, counted with :mod:`tav_pipeline.detectors`),
  plus requested scenes, exact-count accuracy and where the cut falls. Needs no torch.
- :mod:`.vbench`: the four VBench dimensions of Table 2 through the ``vbench`` package.
- :mod:`.standin_weights`: random weights in vbench's formats, for tests and the offline demo.

Nothing is imported here: the workflow reads settings from these modules when it is parsed, and
the libraries each metric needs load only when it runs.
"""
