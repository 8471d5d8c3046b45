"""What this package relies on of Open-Sora-Plan v1.3.1 (tag v1.3.1 = commit
c41050ae06ef35dd9da531d29431dbea6e53a9d9), run as the paper ran it: its own trainer and sampler
from a pinned checkout. Nothing of its code is copied here.

Facts of that version (``opensora/train/train_t2v_diffusers.py``, ``opensora/dataset/t2v_datasets.py``,
``opensora/sample/sample.py``, ``opensora/utils/sample_utils.py``):
* One launch makes ONE pass over the annotation (``train_one_epoch`` is called once) and saves
  only when ``global_step % --checkpointing_steps == 0``. Epochs 16/24/36 therefore need either
  one launch per epoch, each resuming ``--resume_from_checkpoint latest`` with a growing
  ``--max_train_steps`` (``relaunch: per_epoch``), or the annotation repeated once per epoch
  (``relaunch: repeat``). Either way the saves land exactly on the epoch ends.
* ``latest`` means the ``checkpoint-{step}`` folder with the highest step in ``--output_dir``. A job
  that continues from epoch M links the previous epoch's folder in as ``checkpoint-{M x steps}``.
* ``--sparse_n`` must be 4 when ``--sparse1d`` is on (the model builds sparse masks only for 1
  and 4; 2 crashes). ``--pretrained`` must be a folder (a file is read as a state dict with a
  bug). ``--text_encoder_name_1`` must contain ``google/mt5-xxl`` (the encoder is looked up by
  substring, and the v1.3 weights expect its 4096-wide embeddings). Frames must be 4k+1.
* With a ``--pretrained`` folder the model is ``from_pretrained(folder)``: its ``config.json``, not
  the flags, sets sparse attention and the interpolation scales (:func:`.checks.check_pretrained_config`).
* The dataset silently drops: items without ``cap`` or ``resolution``; with ``--force_resolution``,
  aspect ratios outside [1/2, 2] x target; clips longer than 5 x the needed span; clips whose
  resampled frames are fewer than 29 after rounding down to 4k+1 (and, with
  ``--drop_short_ratio``, shorter than ``--num_frames``); then every shape bucket
  (``frames x height x width``) with fewer than 4 x total batch clips. The reader then needs the
  item's ``fps`` key (the filter defaults it to 24, the reader raises ``KeyError``).
  :func:`.annotation.plan_annotation` repeats this filter before launching, so the number of steps per epoch
  is known, and the trainer's own count is checked against it while it runs.
* ``opensora.sample.sample`` writes ``{sample_method}_{index}_gs{guidance}_s{steps}.mp4`` per
  prompt line and a grid video; :func:`.sample.collect_samples` maps them back to our prompt indices.
"""

from __future__ import annotations

import re

TRAIN_SCRIPT = "opensora/train/train_t2v_diffusers.py"
SAMPLE_MODULE = "opensora.sample.sample"
SAMPLE_FILE = "opensora/sample/sample.py"
TEXT_ENCODER = "google/mt5-xxl"
MODELS = ("OpenSoraT2V_v1_3-2B/122",)
AE_STRIDES = {
    "WFVAEModel_D8_4x8x8": (4, 8, 8),
    "WFVAEModel_D16_4x8x8": (4, 8, 8),
    "WFVAEModel_D32_4x8x8": (4, 8, 8),
    "WFVAEModel_D32_8x8x8": (8, 8, 8),
}
MIN_FRAMES = 29
"""``find_closest_y``: the fewest frames a clip may train on."""
BUCKET_MIN_PER_BATCH = 4
"""A shape bucket needs ``4 x total batch size`` clips or it is dropped."""
ASPECT_THRESHOLD = 2.0
TOO_LONG_FACTOR = 5.0
FILTER_LINE = re.compile(r"before filter: (\d+), after filter: (\d+)")
