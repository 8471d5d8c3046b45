"""Checks before Open-Sora-Plan is launched: the checkout, the settings that version accepts,
the weights and the pretrained model's own config (:mod:`.upstream` lists the facts)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tav_pipeline.backends.opensora.upstream import (
    AE_STRIDES,
    MIN_FRAMES,
    MODELS,
    SAMPLE_FILE,
    TEXT_ENCODER,
    TRAIN_SCRIPT,
)
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train.config import TrainConfig


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
