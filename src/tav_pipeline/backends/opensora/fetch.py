"""Rules ``fetch_opensora`` and ``fetch_opensora_weights``: the pinned checkout and the weights."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tav_pipeline.backends.opensora.upstream import TEXT_ENCODER
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train.config import TrainConfig


def fetch_opensora(repo_dir: str | Path, git_url: str, commit: str) -> Path:
    """Rule ``fetch_opensora``: clone ``git_url`` and check out ``commit``.

    Raises:
        MissingAssetError: git is missing or the clone fails (no network): clone by hand.
    """
    from tav_pipeline.errors import LaunchError
    from tav_pipeline.train.process import run_logged

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
