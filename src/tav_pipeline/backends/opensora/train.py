"""Open-Sora-Plan v1.3.1, run as the paper ran it: its own trainer and sampler from a pinned
checkout (tag v1.3.1 = commit c41050ae06ef35dd9da531d29431dbea6e53a9d9). Nothing of its code is
copied here; this module writes the trainer's inputs, checks them against what that version
accepts, launches it and collects what it writes.

Facts of that version this module relies on (``opensora/train/train_t2v_diffusers.py``,
``opensora/dataset/t2v_datasets.py``, ``opensora/sample/sample.py``, ``opensora/utils/sample_utils.py``):

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
  the flags, sets sparse attention and the interpolation scales (:func:`check_pretrained_config`).
* The dataset silently drops: items without ``cap`` or ``resolution``; with ``--force_resolution``,
  aspect ratios outside [1/2, 2] x target; clips longer than 5 x the needed span; clips whose
  resampled frames are fewer than 29 after rounding down to 4k+1 (and, with
  ``--drop_short_ratio``, shorter than ``--num_frames``); then every shape bucket
  (``frames x height x width``) with fewer than 4 x total batch clips. The reader then needs the
  item's ``fps`` key (the filter defaults it to 24, the reader raises ``KeyError``).
  :func:`plan_annotation` repeats this filter before launching, so the number of steps per epoch
  is known, and the trainer's own count is checked against it while it runs.
* ``opensora.sample.sample`` writes ``{sample_method}_{index}_gs{guidance}_s{steps}.mp4`` per
  prompt line and a grid video; :func:`collect_samples` maps them back to our prompt indices.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import GenerateConfig, TrainConfig

log = logging.getLogger(__name__)

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
_FILTER_LINE = re.compile(r"before filter: (\d+), after filter: (\d+)")


# ----------------------------------------------------------------------------------------------
# Checks before launching


def check_checkout(cfg: TrainConfig) -> Path:
    """The Open-Sora-Plan checkout, verified.

    Raises:
        MissingAssetError: no checkout with the trainer and sampler (rule ``fetch_opensora``).
        ConfigError: its HEAD is not ``train.opensora.commit`` (with ``check_commit`` on).
    """
    osp = cfg.opensora
    repo = Path(osp.repo)
    for rel in (TRAIN_SCRIPT, SAMPLE_FILE):
        if not (repo / rel).is_file():
            raise MissingAssetError(repo / rel, "fetch_opensora", f"clone {osp.git_url} at {osp.commit} there")
    if osp.check_commit:
        head = _git_head(repo)
        if head is None:
            raise ConfigError(
                "train.opensora.check_commit",
                f"{repo} is not a git checkout; cannot verify commit {osp.commit} (set check_commit: false to use it anyway)",
            )
        if not head.startswith(osp.commit) and not osp.commit.startswith(head):
            raise ConfigError("train.opensora.commit", f"{repo} is at {head}, not {osp.commit} (v1.3.1)")
    return repo


def _git_head(repo: Path) -> str | None:
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    proc = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def check_settings(cfg: TrainConfig) -> None:
    """Refuse settings Open-Sora-Plan v1.3.1 would crash on or silently change.

    Raises:
        ConfigError: naming the key and the reason.
    """
    osp = cfg.opensora
    if osp.model not in MODELS:
        raise ConfigError("train.opensora.model", f"{osp.model!r} is not a v1.3 text-to-video model {MODELS}")
    if osp.ae not in AE_STRIDES:
        raise ConfigError("train.opensora.ae", f"{osp.ae!r} is not one of {sorted(AE_STRIDES)}")
    stride_t, stride_h, _ = AE_STRIDES[osp.ae]
    if (cfg.num_frames - 1) % stride_t:
        raise ConfigError("train.num_frames", f"{cfg.num_frames} is not {stride_t}k+1 for {osp.ae}")
    if cfg.height % (stride_h * 2) or cfg.width % (stride_h * 2):
        raise ConfigError(
            "train.height", f"{cfg.height}x{cfg.width} must be multiples of {stride_h * 2} (VAE stride x patch 2)"
        )
    if osp.sparse1d and osp.sparse_n != 4:
        raise ConfigError(
            "train.opensora.sparse_n",
            f"{osp.sparse_n}: v1.3.1 builds sparse masks only for sparse_n 1 and 4 and its blocks use 4; anything else crashes",
        )
    if TEXT_ENCODER not in osp.text_encoder_name_1:
        raise ConfigError(
            "train.opensora.text_encoder_name_1",
            f"{osp.text_encoder_name_1!r} must contain {TEXT_ENCODER!r} (the encoder is looked up by that substring and the v1.3 weights expect its embeddings)",
        )
    if float(cfg.fps) != int(cfg.fps):
        raise ConfigError("train.fps", f"{cfg.fps}: --train_fps and --fps are integers in Open-Sora-Plan")
    if cfg.min_frames != MIN_FRAMES:
        raise ConfigError("train.min_frames", f"Open-Sora-Plan's minimum is fixed at {MIN_FRAMES}")
    if 0.0 < cfg.drop_short_ratio < 1.0:
        raise ConfigError(
            "train.drop_short_ratio",
            f"{cfg.drop_short_ratio}: v1.3.1 draws a fresh random number for each short clip of each launch's annotation "
            "(and of each repeated copy), so which clips train cannot be planned before launching and epochs would be "
            "mislabelled; use 0.0 (train short clips on fewer frames) or 1.0 (drop every clip shorter than num_frames)",
        )
    if cfg.prediction_type != "v_prediction" and osp.rescale_betas_zero_snr:
        raise ConfigError("train.prediction_type", "zero terminal SNR needs v-prediction")
    for p in (osp.repo, osp.cache_dir):
        if "," in str(Path(p).resolve()):
            raise ConfigError("train.opensora", f"{p}: a ',' in a path breaks Open-Sora-Plan's data.txt")


def check_weights(cfg: TrainConfig) -> None:
    """``--pretrained`` and ``--ae_path`` must be folders with weights.

    Raises:
        MissingAssetError: naming the folder and the rule ``fetch_opensora_weights``.
    """
    osp = cfg.opensora
    pretrained = Path(osp.pretrained)
    if pretrained.is_file():
        raise ConfigError(
            "train.opensora.pretrained",
            f"{pretrained} is a file; v1.3.1 loads a pretrained model only from a folder (its file branch is broken)",
        )
    if not (pretrained / "config.json").is_file():
        raise MissingAssetError(
            pretrained, "fetch_opensora_weights", f"the any93x640x640 folder of {osp.weights_hub_id}"
        )
    if not Path(osp.ae_path).is_dir():
        raise MissingAssetError(osp.ae_path, "fetch_opensora_weights", f"the vae folder of {osp.weights_hub_id}")
    check_pretrained_config(cfg)
    encoder = Path(osp.text_encoder_name_1)
    cached = Path(osp.cache_dir) / ("models--" + osp.text_encoder_name_1.replace("/", "--"))
    if not encoder.is_dir() and not cached.is_dir():
        raise MissingAssetError(
            cached,
            "fetch_opensora_weights",
            f"{osp.text_encoder_name_1} in the hub cache --cache_dir {osp.cache_dir} (or a local folder whose path contains {TEXT_ENCODER})",
        )


PRETRAINED_CONFIG_DEFAULTS: dict[str, Any] = {
    "sparse1d": False,
    "sparse_n": 2,
    "interpolation_scale_t": 1.0,
    "interpolation_scale_h": 1.0,
    "interpolation_scale_w": 1.0,
}
"""Settings v1.3.1 takes from the ``--pretrained`` folder's ``config.json``, not from its flags (with a
folder it replaces the model built from the flags by ``OpenSoraT2V_v1_3.from_pretrained(folder)``),
with ``OpenSoraT2V_v1_3.__init__``'s defaults for a key the file lacks."""
PRETRAINED_CONFIG_KEYS = tuple(PRETRAINED_CONFIG_DEFAULTS)
PRETRAINED_CLASS = "OpenSoraT2V_v1_3"


def check_pretrained_config(cfg: TrainConfig) -> None:
    """The paper's sparse attention and interpolation settings live in the ``--pretrained`` folder's
    ``config.json``: the trainer builds the model from that file and ignores ``--sparse1d``,
    ``--sparse_n`` and ``--interpolation_scale_*`` (the sampler likewise reads the checkpoint's copy
    of it). So ``train.opensora``'s values must be the ones that file gives, a key the file lacks
    taking the class default of :data:`PRETRAINED_CONFIG_DEFAULTS` (``sparse1d`` missing means
    dense attention); otherwise the run would train, and be reported, with settings not used.

    Raises:
        ConfigError: naming the key, both values and the file; or the file is not an
            ``OpenSoraT2V_v1_3`` config.
    """
    osp = cfg.opensora
    path = Path(osp.pretrained) / "config.json"
    config = json.loads(path.read_text())
    if config.get("_class_name", PRETRAINED_CLASS) != PRETRAINED_CLASS:
        raise ConfigError(
            "train.opensora.pretrained", f"{path} is a {config['_class_name']!r} config, not {PRETRAINED_CLASS!r}"
        )
    for key, default in PRETRAINED_CONFIG_DEFAULTS.items():
        used = config.get(key, default)
        if used != getattr(osp, key):
            said = f"says {used!r}" if key in config else f"has no {key!r}, so the class default {default!r} is used"
            raise ConfigError(
                f"train.opensora.{key}",
                f"{getattr(osp, key)!r}, but {path} {said}; Open-Sora-Plan builds the model from that file "
                "and ignores the flag: make them the same",
            )


# ----------------------------------------------------------------------------------------------
# The annotation


@dataclass
class AnnotationPlan:
    """Which annotation items the trainer will use, and why the others would be skipped."""

    items: list[dict[str, Any]]
    rejected: list[dict[str, Any]] = field(default_factory=list)
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def usable(self) -> int:
        return len(self.items)


def read_data_txt(path: str | Path) -> list[tuple[str, str]]:
    """``VIDEO_ROOT,ANNOTATION_JSON`` lines of Open-Sora-Plan's ``--data`` file."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) != 2:
            raise ConfigError(
                "dataset.opensora", f"{path} line {n}: expected 'VIDEO_ROOT,ANNOTATION_JSON', got {line!r}"
            )
        rows.append((parts[0], parts[1]))
    if not rows:
        raise ConfigError("dataset.opensora", f"{path} names no annotation")
    return rows


def resampled_count(frames: int, fps: float, train_fps: float) -> int:
    """Frames left after Open-Sora-Plan resamples a clip to ``train_fps`` (its own arithmetic:
    ``np.arange(0, frames, fps / train_fps).astype(int)``, kept below ``frames``)."""
    import numpy as np

    interval = 1.0 if abs(fps - train_fps) < 0.1 else fps / train_fps
    idx = np.arange(0, frames, interval).astype(int)
    return int((idx < frames).sum())


def closest_frames(n: int, stride_t: int = 4) -> int:
    """``find_closest_y``: the largest ``y <= n`` with ``(y - 1) % stride_t == 0``, at least 29; -1 if none."""
    if n < MIN_FRAMES:
        return -1
    for y in range(n, MIN_FRAMES - 1, -1):
        if (y - 1) % stride_t == 0:
            return y
    return -1


def plan_annotation(rows: Sequence[tuple[str, str]], cfg: TrainConfig) -> AnnotationPlan:
    """Repeat Open-Sora-Plan's dataset filter on the annotation(s) of ``--data``.

    Arguments:
        rows: ``(video_root, annotation_json)`` pairs from :func:`read_data_txt`.
        cfg: the ``train:`` settings (``num_gpus`` processes share a shape bucket's batches).

    Returns:
        the items that will train (paths made absolute) and the skipped ones with reasons.

    Raises:
        ConfigError: an item lacks ``fps`` or ``num_frames`` (the reader needs them), or
            ``unusable_clips: error`` and some item would be skipped.
        MissingAssetError: an annotation or a video is missing.
    """
    stride_t = AE_STRIDES[cfg.opensora.ae][0]
    aspect = cfg.height / cfg.width
    kept: list[tuple[dict[str, Any], str]] = []
    rejected: list[dict[str, Any]] = []
    for root, annotation in rows:
        if not Path(annotation).is_file():
            raise MissingAssetError(annotation, "build_tav", "the Open-Sora-Plan annotation")
        for item in json.loads(Path(annotation).read_text()):
            item = dict(item)
            path = os.path.join(root, str(item.get("path", "")))
            item["path"] = str(Path(path).resolve())
            name = item["path"]
            if item.get("cap") is None:
                rejected.append({"path": name, "reason": "no_caption"})
                continue
            res = item.get("resolution") or {}
            if res.get("height") is None or res.get("width") is None:
                rejected.append({"path": name, "reason": "no_resolution"})
                continue
            h, w = int(res["height"]), int(res["width"])
            if not (aspect / ASPECT_THRESHOLD <= h / w <= aspect * ASPECT_THRESHOLD):
                rejected.append({"path": name, "reason": "aspect_ratio", "detail": f"{w}x{h}"})
                continue
            if not name.endswith(".mp4"):
                rejected.append({"path": name, "reason": "not_mp4"})
                continue
            for key in ("fps", "num_frames"):
                if item.get(key) is None:
                    raise ConfigError(
                        "dataset.opensora",
                        f"{name}: the item has no {key!r}; Open-Sora-Plan's reader needs it (rule build_tav writes it)",
                    )
            fps, frames = float(item["fps"]), int(item["num_frames"])
            if frames > TOO_LONG_FACTOR * (cfg.num_frames * fps / cfg.fps):
                rejected.append({"path": name, "reason": "too_long", "detail": f"{frames} frames"})
                continue
            n = resampled_count(frames, fps, cfg.fps)
            if n < cfg.num_frames and cfg.drop_short_ratio >= 1.0:
                rejected.append(
                    {"path": name, "reason": "shorter_than_num_frames", "detail": f"{n} frames at {cfg.fps} fps"}
                )
                continue
            length = closest_frames(min(n, cfg.num_frames), stride_t)
            if length == -1:
                rejected.append(
                    {"path": name, "reason": "too_short", "detail": f"{n} frames at {cfg.fps} fps (needs {MIN_FRAMES})"}
                )
                continue
            if not Path(name).is_file():
                raise MissingAssetError(name, "extract_clip", "a clip named in the Open-Sora-Plan annotation")
            kept.append((item, f"{length}x{cfg.height}x{cfg.width}"))
    counts = Counter(shape for _, shape in kept)
    minimum = BUCKET_MIN_PER_BATCH * cfg.global_batch_size
    items = []
    for item, shape in kept:
        if counts[shape] >= minimum:
            items.append(item)
        else:
            rejected.append(
                {
                    "path": item["path"],
                    "reason": "small_bucket",
                    "detail": f"{shape} has {counts[shape]} clip(s), needs {minimum}",
                }
            )
    plan = AnnotationPlan(items, rejected, {k: v for k, v in counts.items() if v >= minimum})
    for r in rejected:
        log.warning("Open-Sora-Plan would skip %s: %s %s", r["path"], r["reason"], r.get("detail", ""))
    if rejected and cfg.opensora.unusable_clips == "error":
        raise ConfigError(
            "train.opensora.unusable_clips",
            f"{len(rejected)} clip(s) would be skipped by the trainer (see the log); set unusable_clips: drop to leave them out",
        )
    if not items:
        raise ConfigError("train", "no clip of the annotation survives Open-Sora-Plan's filter")
    return plan


def annotation_items(plan: AnnotationPlan, repeat: int = 1, order_seed: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The items of one launch's annotation: ``repeat`` copies of the plan's items, in the plan's
    order (``order_seed`` ``None``: v1.3.1's fixed sampler then gives every launch the same clip
    order), or each copy shuffled by a generator seeded with ``(*order_seed, copy)``."""
    if order_seed is None:
        return plan.items * repeat
    import numpy as np

    items = []
    for copy in range(repeat):
        order = np.random.default_rng([*order_seed, copy]).permutation(len(plan.items))
        items += [plan.items[i] for i in order]
    return items


def write_annotation(
    plan: AnnotationPlan, folder: str | Path, repeat: int = 1, order_seed: Sequence[int] | None = None
) -> Path:
    """Write the annotation the trainer reads (:func:`annotation_items`, absolute paths) and its
    ``data.txt``. Returns the ``data.txt`` path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    annotation = out / "annotation.json"
    annotation.write_text(json.dumps(annotation_items(plan, repeat, order_seed), indent=1) + "\n")
    data = out / "data.txt"
    if "," in str(annotation.resolve()):
        raise ConfigError("results", f"{annotation.resolve()}: a ',' in the path breaks Open-Sora-Plan's data.txt")
    data.write_text(f"/,{annotation.resolve()}\n")
    return data


# ----------------------------------------------------------------------------------------------
# Commands


def train_argv(
    cfg: TrainConfig,
    *,
    accelerate_yaml: str | Path,
    data_txt: str | Path,
    output_dir: str | Path,
    max_train_steps: int,
    checkpointing_steps: int,
) -> list[str]:
    """``accelerate launch --config_file ... opensora/train/train_t2v_diffusers.py`` with the
    paper's settings (run from the checkout's root)."""
    osp = cfg.opensora
    argv = [
        "accelerate",
        "launch",
        "--config_file",
        str(Path(accelerate_yaml).resolve()),
        TRAIN_SCRIPT,
        "--dataset",
        "t2v",
        "--data",
        str(Path(data_txt).resolve()),
        "--model",
        osp.model,
        "--pretrained",
        str(Path(osp.pretrained).resolve()),
        "--ae",
        osp.ae,
        "--ae_path",
        str(Path(osp.ae_path).resolve()),
        "--text_encoder_name_1",
        osp.text_encoder_name_1,
        "--cache_dir",
        str(Path(osp.cache_dir).resolve()),
        "--num_frames",
        str(cfg.num_frames),
        "--max_height",
        str(cfg.height),
        "--max_width",
        str(cfg.width),
        "--force_resolution",
        "--train_fps",
        str(int(cfg.fps)),
        "--sample_rate",
        str(cfg.sample_rate),
        "--drop_short_ratio",
        str(cfg.drop_short_ratio),
        "--speed_factor",
        "1.0",
        "--train_batch_size",
        str(cfg.batch_size),
        "--gradient_accumulation_steps",
        "1",
        "--dataloader_num_workers",
        str(osp.dataloader_num_workers),
        "--learning_rate",
        str(cfg.effective_learning_rate),
        "--lr_scheduler",
        cfg.lr_scheduler,
        "--lr_warmup_steps",
        str(cfg.lr_warmup_steps),
        "--adam_beta1",
        str(cfg.adam_beta1),
        "--adam_beta2",
        str(cfg.adam_beta2),
        "--adam_weight_decay",
        str(cfg.adam_weight_decay),
        "--adam_epsilon",
        str(cfg.adam_epsilon),
        "--max_grad_norm",
        str(cfg.max_grad_norm),
        "--mixed_precision",
        cfg.mixed_precision,
        "--model_max_length",
        str(osp.model_max_length),
        "--cfg",
        str(cfg.text_drop_prob),
        "--interpolation_scale_t",
        str(osp.interpolation_scale_t),
        "--interpolation_scale_h",
        str(osp.interpolation_scale_h),
        "--interpolation_scale_w",
        str(osp.interpolation_scale_w),
        "--prediction_type",
        cfg.prediction_type,
        "--seed",
        str(cfg.seed),
        "--output_dir",
        str(Path(output_dir).resolve()),
        "--checkpointing_steps",
        str(checkpointing_steps),
        "--max_train_steps",
        str(max_train_steps),
        "--resume_from_checkpoint",
        "latest",
        "--report_to",
        osp.report_to,
    ]
    if cfg.snr_gamma > 0:
        argv += ["--snr_gamma", str(cfg.snr_gamma)]
    if cfg.use_ema:
        argv += ["--use_ema", "--ema_decay", str(cfg.ema_decay), "--ema_start_step", str(cfg.ema_start_step)]
    if cfg.gradient_checkpointing:
        argv.append("--gradient_checkpointing")
    if osp.sparse1d:
        argv += ["--sparse1d", "--sparse_n", str(osp.sparse_n)]
    if osp.rescale_betas_zero_snr:
        argv.append("--rescale_betas_zero_snr")
    if osp.use_decord:
        argv.append("--use_decord")
    if osp.allow_tf32:
        argv.append("--allow_tf32")
    return argv + list(osp.extra_args)


def sample_argv(
    cfg: TrainConfig,
    gen: GenerateConfig,
    *,
    model_path: str | Path,
    prompt_file: str | Path,
    save_dir: str | Path,
    port: int,
) -> list[str]:
    """``torchrun --nproc_per_node 1 -m opensora.sample.sample`` for one prompt file."""
    osp, s = cfg.opensora, gen.opensora
    argv = [
        "torchrun",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "1",
        "--master_port",
        str(port),
        "-m",
        SAMPLE_MODULE,
        "--model_path",
        str(Path(model_path).resolve()),
        "--version",
        "v1_3",
        "--model_type",
        "t2v",
        "--num_frames",
        str(cfg.num_frames),
        "--height",
        str(cfg.height),
        "--width",
        str(cfg.width),
        "--fps",
        str(int(cfg.fps)),
        "--cache_dir",
        str(Path(osp.cache_dir).resolve()),
        "--text_encoder_name_1",
        osp.text_encoder_name_1,
        "--text_prompt",
        str(Path(prompt_file).resolve()),
        "--ae",
        osp.ae,
        "--ae_path",
        str(Path(osp.ae_path).resolve()),
        "--save_img_path",
        str(Path(save_dir).resolve()),
        "--guidance_scale",
        str(s.guidance_scale),
        "--num_sampling_steps",
        str(s.num_sampling_steps),
        "--max_sequence_length",
        str(s.max_sequence_length),
        "--sample_method",
        s.sample_method,
        "--seed",
        str(gen.seed),
        "--num_samples_per_prompt",
        "1",
        "--prediction_type",
        cfg.prediction_type,
    ]
    if osp.rescale_betas_zero_snr:
        argv.append("--rescale_betas_zero_snr")
    if s.save_memory:
        argv.append("--save_memory")
    return argv + list(s.extra_args)


def launch_env(repo: str | Path) -> dict[str, str]:
    """The checkout on ``PYTHONPATH`` (its README installs it with ``pip install -e .``), and the
    hub offline, as the official v1.3 training script sets it (:func:`check_weights` has made sure
    the weights and mT5-XXL are on disk)."""
    root = str(Path(repo).resolve())
    path = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": root + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


def _executable(name: str) -> str:
    """``accelerate`` / ``torchrun`` on PATH, else beside this interpreter (an env's own tools, when
    the env runs without being activated)."""
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        raise MissingAssetError(name, "conda env envs/train-opensora.yaml", f"'{name}' is not on PATH")
    return exe


# ----------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class Launch:
    """One trainer launch of a job."""

    epochs: tuple[int, int]
    """Epochs ``(from, to]`` it trains."""
    repeat: int
    max_train_steps: int
    checkpointing_steps: int


def plan_launches(job: ckpt.EpochJob, usable: int, relaunch: str, global_batch: int = 1) -> list[Launch]:
    """The launches that take a job from its start to its end epoch.

    ``per_epoch``: one launch per epoch; each makes one pass of ``ceil(steps_per_epoch x
    global_batch / usable)`` copies of the annotation (every step takes ``global_batch`` clips:
    batch size x processes), stops at ``epoch x steps_per_epoch`` and saves there
    (``--checkpointing_steps`` = steps per epoch). ``repeat``: one launch whose annotation holds
    enough copies for all the job's steps, saving only at its end (``--checkpointing_steps`` = the
    end step, so no intermediate full state is written).
    """
    s = job.steps_per_epoch
    if relaunch == "per_epoch":
        copies = math.ceil(s * global_batch / usable)
        return [Launch((k - 1, k), copies, k * s, s) for k in range(job.start_epoch + 1, job.end_epoch + 1)]
    total = (job.end_epoch - job.start_epoch) * s
    return [Launch((job.start_epoch, job.end_epoch), math.ceil(total * global_batch / usable), job.end_step, job.end_step)]


def link_previous(work: Path, previous_dir: Path, step: int) -> Path:
    """Make ``work/checkpoint-{step}`` point at the previous epoch's folder so the trainer's
    ``--resume_from_checkpoint latest`` finds it."""
    link = work / f"{ckpt.PREFIX}{step}"
    if link.is_symlink() or link.exists():
        return link
    link.symlink_to(previous_dir.resolve(), target_is_directory=True)
    return link


def remove_incomplete(work: Path) -> list[Path]:
    """Delete the ``checkpoint-*`` entries of ``work`` that cannot be resumed (a save cut short, a
    link to a folder gone): v1.3.1's ``--resume_from_checkpoint latest`` takes the highest step
    whatever its state, and would fail on them at every relaunch."""
    removed = []
    for path in work.glob(f"{ckpt.PREFIX}*"):
        if ckpt.step_of(path) is None or (path.is_dir() and ckpt.is_complete(path)):
            continue
        log.warning("removing %s: an incomplete checkpoint the trainer would try to resume from", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


def train_opensora_step(
    data_txt: str | Path,
    previous_dir: str | Path | None,
    out_dir: str | Path,
    work_dir: str | Path,
    train: dict[str, Any],
    epoch: int,
) -> ckpt.TrainState:
    """Rule ``train_opensora``: train epochs ``(previous, epoch]`` with Open-Sora-Plan's trainer.

    Arguments:
        data_txt: ``results/opensora/data.txt`` (``VIDEO_ROOT,ANNOTATION_JSON``).
        previous_dir: the checkpoint of the configured epoch before ``epoch`` (``None`` for the first).
        out_dir: ``results/checkpoints/{model}/epoch_{epoch}`` (the trainer's last ``checkpoint-*``).
        work_dir: the trainer's ``--output_dir``, kept across failed runs.
        train: the ``train:`` config section.
        epoch: the epoch to reach.
    """
    from tav_pipeline.train.accelerate_config import check_gpus, write_launch_files
    from tav_pipeline.train.process import run_logged

    cfg = TrainConfig.from_dict(train)
    repo = check_checkout(cfg)
    check_settings(cfg)
    check_weights(cfg)
    check_gpus(cfg.num_gpus, "train_opensora")
    plan = plan_annotation(read_data_txt(data_txt), cfg)
    job = ckpt.EpochJob(cfg.previous_epoch(epoch), epoch, cfg.steps_per_epoch(plan.usable))
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "opensora_plan.json").write_text(
        json.dumps(
            {"usable": plan.usable, "buckets": plan.buckets, "rejected": plan.rejected, "job": job.__dict__}, indent=2
        )
        + "\n"
    )
    log.info(
        "Open-Sora-Plan: %d usable clip(s) in buckets %s, %d skipped; epochs %d -> %d, %d steps per epoch; "
        "%d process(es) x batch %d = global batch %d, learning rate %g (lr_scaling %s)",
        plan.usable,
        plan.buckets,
        len(plan.rejected),
        job.start_epoch,
        job.end_epoch,
        job.steps_per_epoch,
        cfg.num_gpus,
        cfg.batch_size,
        cfg.global_batch_size,
        cfg.effective_learning_rate,
        cfg.lr_scaling,
    )
    remove_incomplete(work)
    if job.start_epoch > 0:
        if previous_dir is None or not ckpt.is_complete(previous_dir):
            raise MissingAssetError(
                previous_dir or f"epoch_{job.start_epoch}", "train_opensora", "the previous epoch's checkpoint"
            )
        ckpt.check_processes(previous_dir, cfg.num_gpus, "or retrain from the first epoch")
        if ckpt.latest_checkpoint(work, after_step=job.start_step - 1) is None:
            link_previous(work, Path(previous_dir), job.start_step)
    files = write_launch_files(work / "launch", cfg, use_cpu=False, num_processes=cfg.num_gpus)
    started = time.time()
    for launch in plan_launches(job, plan.usable, cfg.opensora.relaunch, cfg.global_batch_size):
        target = launch.max_train_steps
        done = ckpt.latest_checkpoint(work)
        if done is not None and done[0] >= target:
            log.info("epochs %s already trained (%s)", launch.epochs, done[1])
            continue
        order_seed = (cfg.seed, launch.epochs[1]) if cfg.opensora.data_order == "per_epoch" else None
        data = write_annotation(plan, work / "data", launch.repeat, order_seed)
        expected = plan.usable * launch.repeat
        argv = train_argv(
            cfg,
            accelerate_yaml=files.accelerate_yaml,
            data_txt=data,
            output_dir=work,
            max_train_steps=target,
            checkpointing_steps=launch.checkpointing_steps,
        )
        argv[0] = _executable("accelerate")
        run_logged(argv, env=launch_env(repo), cwd=repo, on_line=_filter_check(expected))
        saved = work / f"{ckpt.PREFIX}{target}"
        if not ckpt.is_complete(saved):
            raise MissingAssetError(saved, "train_opensora", f"the trainer did not save step {target}; see the log")
        ckpt.rotate(work, keep=1)
    final = work / f"{ckpt.PREFIX}{job.end_step}"
    if final.is_symlink():
        raise MissingAssetError(final, "train_opensora", "the job trained nothing past the previous epoch")
    if (work / "logs").is_dir():
        shutil.move(str(work / "logs"), str(final / "logs"))
    state = ckpt.TrainState(
        model=cfg.model,
        backend="opensora",
        epoch=epoch,
        global_step=job.end_step,
        steps_per_epoch=job.steps_per_epoch,
        usable_clips=plan.usable,
        base=cfg.opensora.pretrained,
        resumed_from=str(previous_dir or ""),
        seconds=round(time.time() - started, 2),
        settings=cfg.to_dict(),
        num_processes=cfg.num_gpus,
        learning_rate=cfg.effective_learning_rate,
    )
    ckpt.finalize(final, out_dir)
    state.write(out_dir)
    shutil.copy(work / "opensora_plan.json", Path(out_dir) / "opensora_plan.json")
    shutil.rmtree(work, ignore_errors=True)
    return state


def _filter_check(expected: int) -> Any:
    """A line callback that stops the trainer when its dataset filter keeps a different number of
    clips than :func:`plan_annotation` planned (the epoch arithmetic would then be wrong)."""

    def check(line: str) -> None:
        m = _FILTER_LINE.search(line)
        if m and int(m.group(2)) != expected:
            raise ConfigError(
                "train",
                f"Open-Sora-Plan kept {m.group(2)} of {m.group(1)} clips, the plan expected {expected}; epochs would be mislabelled",
            )

    return check


# ----------------------------------------------------------------------------------------------
# Sampling


def write_prompt_file(prompts: Sequence[str], path: str | Path) -> Path:
    """One prompt per line, as ``--text_prompt FILE.txt`` reads them (no blank lines)."""
    for i, p in enumerate(prompts):
        if not p.strip() or "\n" in p:
            raise ConfigError("generate", f"prompt {i} is empty or spans lines: {p!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(p.strip() for p in prompts) + "\n")
    return Path(path)


def collect_samples(save_dir: str | Path, out_dir: str | Path, count: int, gen: GenerateConfig) -> list[Path]:
    """Move the sampler's ``{method}_{index}_gs{g}_s{steps}.mp4`` files to ``out_dir/{index}.mp4``.

    Raises:
        MissingAssetError: some prompt index has no video.
    """
    s = gen.opensora
    pattern = re.compile(rf"^{re.escape(s.sample_method)}_(\d+)_gs[^_]+_s{s.num_sampling_steps}\.mp4$")
    found: dict[int, Path] = {}
    for path in Path(save_dir).iterdir():
        m = pattern.match(path.name)
        if m:
            found[int(m.group(1))] = path
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise MissingAssetError(
            Path(save_dir) / f"{s.sample_method}_{missing[0]}_gs*_s{s.num_sampling_steps}.mp4",
            "generate_videos",
            f"Open-Sora-Plan's sampler wrote no video for prompt(s) {missing}",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.move(str(found[i]), str(out / f"{i}.mp4"))) for i in range(count)]


def sample_opensora_step(
    checkpoint_dir: str | Path | None,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    work_dir: str | Path,
    train: dict[str, Any],
    generate: dict[str, Any],
    checkpoint: str = "",
) -> dict[str, list[Path]]:
    """Rule ``generate_videos`` with ``train.backend: opensora``: every group's test prompts
    through ``opensora.sample.sample``.

    Arguments:
        checkpoint_dir: an epoch folder, or ``None`` for the baseline (``train.opensora.pretrained``).
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/{checkpoint}/{group}``.
        work_dir: scratch folder.
        train, generate: the config sections.
        checkpoint: the checkpoint's name for the manifest (``baseline``, ``epoch_16``).
    """
    from tav_pipeline.generate import read_prompts, write_manifest
    from tav_pipeline.train.process import run_logged

    cfg = TrainConfig.from_dict(train)
    gen = GenerateConfig.from_dict(generate)
    repo = check_checkout(cfg)
    check_settings(cfg)
    check_weights(cfg)
    model_path = (
        Path(cfg.opensora.pretrained) if checkpoint_dir is None else ckpt.weights_dir(checkpoint_dir, gen.weights)
    )
    results: dict[str, list[Path]] = {}
    for group, prompt_path in prompt_files.items():
        prompts = read_prompts(prompt_path)
        work = Path(work_dir) / group
        shutil.rmtree(work, ignore_errors=True)
        prompt_file = write_prompt_file(prompts, work / "prompts.txt")
        argv = sample_argv(
            cfg, gen, model_path=model_path, prompt_file=prompt_file, save_dir=work / "samples", port=_port()
        )
        argv[0] = _executable("torchrun")
        run_logged(argv, env=launch_env(repo), cwd=repo)
        videos = collect_samples(work / "samples", out_dirs[group], len(prompts), gen)
        write_manifest(
            out_dirs[group],
            cfg,
            gen,
            checkpoint=checkpoint or ("baseline" if checkpoint_dir is None else Path(checkpoint_dir).name),
            group=group,
            prompts=prompts,
            backend="opensora",
        )
        results[group] = videos
    shutil.rmtree(work_dir, ignore_errors=True)
    return results


def _port() -> int:
    from tav_pipeline.train.accelerate_config import free_port

    return free_port()


# ----------------------------------------------------------------------------------------------
# Fetching


def fetch_opensora(repo_dir: str | Path, git_url: str, commit: str) -> Path:
    """Rule ``fetch_opensora``: clone ``git_url`` and check out ``commit``.

    Raises:
        MissingAssetError: git is missing or the clone fails (no network): clone by hand.
    """
    from tav_pipeline.train.process import LaunchError, run_logged

    git = shutil.which("git")
    if git is None:
        raise MissingAssetError(repo_dir, "fetch_opensora", "git is not installed")
    dst = Path(repo_dir)
    try:
        run_logged([git, "clone", "--no-checkout", git_url, str(dst)])
        run_logged([git, "-C", str(dst), "checkout", "--detach", commit])
    except LaunchError as exc:
        shutil.rmtree(dst, ignore_errors=True)
        raise MissingAssetError(
            dst, "fetch_opensora", f"git failed ({exc.returncode}); clone {git_url} at {commit} by hand"
        ) from exc
    return dst


def fetch_opensora_weights(cfg: TrainConfig) -> list[Path]:
    """Rule ``fetch_opensora_weights``: the v1.3.0 transformer (``any93x640x640``) and WF-VAE from
    ``weights_hub_id``, and ``google/mt5-xxl`` into ``cache_dir``; each only where nothing is
    at its path yet (what a user placed is never overwritten).

    Returns:
        the paths downloaded.

    Raises:
        MissingAssetError: the download fails (no network): place the folders by hand.
    """
    from huggingface_hub import snapshot_download

    osp = cfg.opensora
    pretrained, vae = Path(osp.pretrained), Path(osp.ae_path)
    encoder = Path(osp.cache_dir) / ("models--" + TEXT_ENCODER.replace("/", "--"))
    folders = [p for p in (pretrained, vae) if not os.path.lexists(p)]
    if folders and pretrained.parent != vae.parent:
        raise ConfigError(
            "train.opensora.ae_path",
            "fetch_opensora_weights needs pretrained and ae_path side by side (as in the hub repository)",
        )
    fetch_encoder = not Path(osp.text_encoder_name_1).is_dir() and not os.path.lexists(encoder)
    try:
        if folders:
            snapshot_download(
                osp.weights_hub_id,
                local_dir=str(pretrained.parent),
                allow_patterns=[f"{p.name}/*" for p in folders],
            )
        if fetch_encoder:
            snapshot_download(  # the PyTorch weights, config and tokenizer (not the TF and Flax copies)
                TEXT_ENCODER,
                cache_dir=osp.cache_dir,
                allow_patterns=["*.json", "spiece.model", "pytorch_model*.bin", "*.safetensors"],
            )
    except Exception as exc:  # network or hub errors all mean: not here
        raise MissingAssetError(
            pretrained.parent, "fetch_opensora_weights", f"download from {osp.weights_hub_id} failed: {exc}"
        ) from exc
    return folders + ([encoder] if fetch_encoder else [])


def fetch_opensora_weights_step(train: dict[str, Any]) -> None:
    """Rule ``fetch_opensora_weights``."""
    fetch_opensora_weights(TrainConfig.from_dict(train))
