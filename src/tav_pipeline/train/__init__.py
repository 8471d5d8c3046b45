"""Post-training (paper section 4) and its two backends.

* :mod:`.external` runs Open-Sora-Plan v1.3.1's own trainer and sampler from a pinned checkout
  (the paper's exact setup): it writes their inputs, validates them, and launches them.
* :mod:`.loop` post-trains any supported diffusers text-to-video pipeline (CogVideoX first) with
  the same recipe; :mod:`.latents` caches its text and VAE latents once, :mod:`.families` adapts
  each model family, :mod:`.loss` holds the objective.
* :mod:`.checkpoint` is the checkpoint layout both share, :mod:`.accelerate_config` the launch
  files (single-process DeepSpeed ZeRO-2), :mod:`.process` runs external commands into the log,
  :mod:`.config` holds the typed ``train:`` / ``generate:`` settings and :mod:`.targets` the rules'
  paths.

Heavy imports (torch, diffusers, accelerate) happen inside the functions that need them, so the
workflow can read configs and plan Open-Sora-Plan runs without them.
"""

from tav_pipeline.train.config import DiffusersConfig, GenerateConfig, OpenSoraConfig, TrainConfig

__all__ = ["DiffusersConfig", "GenerateConfig", "OpenSoraConfig", "TrainConfig"]
