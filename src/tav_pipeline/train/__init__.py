"""Post-training (paper section 4): what both model backends (:mod:`tav_pipeline.backends`) share.

* :mod:`.config` holds the typed ``train:`` / ``generate:`` settings and :mod:`.targets` the rules'
  paths and config slices.
* :mod:`.checkpoint` is the checkpoint layout, :mod:`.frames` Open-Sora-Plan's frame arithmetic,
  :mod:`.accelerate_config` the launch files (DeepSpeed ZeRO-2), :mod:`.process` runs external
  commands into the log.

Heavy imports (torch, diffusers, accelerate) happen inside the functions that need them, so the
workflow can read configs and plan runs without them.
"""

from tav_pipeline.train.config import DiffusersConfig, GenerateConfig, OpenSoraConfig, TrainConfig

__all__ = ["DiffusersConfig", "GenerateConfig", "OpenSoraConfig", "TrainConfig"]
