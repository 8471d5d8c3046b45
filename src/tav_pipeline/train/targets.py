"""Paths of the post-training and generation rules (``rules/train.smk``, ``rules/generate.smk``),
as functions of the config sections, so the rule files hold only rules."""

from __future__ import annotations

import os
from typing import Any

from tav_pipeline.train.config import is_local


def checkpoint_dir(results: str, model: str, epoch: int | str) -> str:
    """``{results}/checkpoints/{model}/epoch_{epoch}``."""
    return f"{results}/checkpoints/{model}/epoch_{epoch}"


def epochs(train: dict[str, Any]) -> list[int]:
    return sorted(int(e) for e in train["epochs"])


def checkpoint_targets(results: str, train: dict[str, Any]) -> list[str]:
    """Every configured epoch's checkpoint folder."""
    return [checkpoint_dir(results, train["model"], e) for e in epochs(train)]


def previous_checkpoint(results: str, train: dict[str, Any], model: str, epoch: int | str) -> list[str]:
    """The checkpoint of the configured epoch before ``epoch`` (none for the first)."""
    before = [e for e in epochs(train) if e < int(epoch)]
    return [checkpoint_dir(results, model, before[-1])] if before else []


def diffusers_model_input(train: dict[str, Any]) -> list[str]:
    """The pipeline folder when ``train.diffusers.pretrained`` is a local path (a hub id is
    fetched into the hub cache by the library itself)."""
    path = str(train["diffusers"]["pretrained"])
    return [path] if is_local(path) else []


def fetches_diffusers_model(train: dict[str, Any], tiny_dir: str) -> bool:
    """Whether the rule ``fetch_diffusers_model`` provides ``train.diffusers.pretrained``: a local
    path with a hub id to download from, other than the tiny demo model's folder."""
    d = train["diffusers"]
    path = str(d["pretrained"])
    return (
        train["backend"] == "diffusers"
        and is_local(path)
        and bool(d["hub_id"])
        and os.path.normpath(path) != os.path.normpath(tiny_dir)
    )


TRAINING_ONLY = ("num_gpus", "lr_scaling")
"""``train:`` keys that only the training jobs read: how many processes, and how the rate follows them."""


def settings_beside_training(train: dict[str, Any]) -> dict[str, Any]:
    """``train:`` as the rules other than training take it (latent caching, generation), without
    :data:`TRAINING_ONLY`, so that moving training to more GPUs reruns neither."""
    return {k: v for k, v in train.items() if k not in TRAINING_ONLY}


def training_gpus(train: dict[str, Any]) -> int:
    """GPUs of one training job: ``train.num_gpus`` (one process each)."""
    return int(train.get("num_gpus", 1))


def slurm_gres(num_gpus: int, site_gres: str | None = None) -> str:
    """The SLURM ``gres`` of a training job: ``num_gpus`` GPUs of the type the site names for its
    GPU rules (``TAV_SLURM_GPU_GRES``, read by profiles/slurm for the other GPU rules; default
    ``gpu:h200:1``), e.g. ``gpu:h200:8``. Only the SLURM executor reads it."""
    site = site_gres if site_gres is not None else os.environ.get("TAV_SLURM_GPU_GRES", "gpu:h200:1")
    parts = site.split(":")
    if len(parts) > 1 and parts[-1].isdigit():
        parts = parts[:-1]  # the count the site gives its one-GPU rules
    return ":".join([*parts, str(num_gpus)])


def opensora_inputs(train: dict[str, Any]) -> list[str]:
    """The checkout and the weight folders Open-Sora-Plan's trainer and sampler read."""
    o = train["opensora"]
    return [str(o["repo"]), str(o["pretrained"]), str(o["ae_path"])]


def model_inputs(train: dict[str, Any]) -> list[str]:
    """What generation reads besides the checkpoint, per backend."""
    return opensora_inputs(train) if train["backend"] == "opensora" else diffusers_model_input(train)


def generation_checkpoints(train: dict[str, Any], generate: dict[str, Any]) -> list[str]:
    """``baseline`` (when ``generate.baseline``) and ``epoch_{N}`` for every configured epoch."""
    return (["baseline"] if generate["baseline"] else []) + [f"epoch_{e}" for e in epochs(train)]


def generated_dir(results: str, model: str, checkpoint: str, group: str) -> str:
    return f"{results}/generated/{model}/{checkpoint}/{group}"


def generated_targets(results: str, train: dict[str, Any], generate: dict[str, Any]) -> list[str]:
    """Every group folder of every checkpoint."""
    return [
        generated_dir(results, train["model"], c, str(g))
        for c in generation_checkpoints(train, generate)
        for g in generate["groups"]
    ]


def checkpoint_input(results: str, model: str, checkpoint: str) -> list[str]:
    """The epoch folder a generation job reads (none for the baseline)."""
    return [] if checkpoint == "baseline" else [f"{results}/checkpoints/{model}/{checkpoint}"]
