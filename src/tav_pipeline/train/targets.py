"""Paths of the post-training and generation rules (``rules/train.smk``, ``rules/generate.smk``),
as functions of the config sections, so the rule files hold only rules."""

from __future__ import annotations

import os
from typing import Any


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


def _pick(section: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: section[k] for k in keys if k in section}


# What each rule takes of ``train:`` as its params. Snakemake reruns a job when its params change,
# so each rule gets the slice that shapes its output and nothing else: a one-line change to the
# config reruns what it changes (README: "What a config change reruns"). The slices are tested
# against the code that reads them (tests/test_rerun_scope.py).

CACHE_KEYS = (
    "backend", "model", "num_frames", "min_frames", "height", "width", "fps", "sample_rate",
    "drop_short_ratio", "seed", "prediction_type",
)  # fmt: skip
CACHE_DIFFUSERS_KEYS = (
    "pretrained", "revision", "device", "window", "windows_per_clip", "encode_dtype", "max_sequence_length",
)  # fmt: skip
"""``train:`` keys the latent cache depends on (:func:`tav_pipeline.backends.diffusers.latents.cache_settings`,
the clip plan, the model family)."""

GENERATION_KEYS = ("backend", "model", "num_frames", "height", "width", "fps", "min_frames", "prediction_type")
"""``train:`` keys generation reads besides each backend's section (:meth:`Backend.generation_settings`)."""


def caching_settings(train: dict[str, Any]) -> dict[str, Any]:
    """``train:`` as the rule ``cache_latents`` takes it: what the cached latents depend on. The
    epochs, the optimizer, EMA and the process count are not among them."""
    return {**_pick(train, CACHE_KEYS), "diffusers": _pick(train["diffusers"], CACHE_DIFFUSERS_KEYS)}


def generation_settings(train: dict[str, Any]) -> dict[str, Any]:
    """``train:`` as the rule ``generate_videos`` takes it: the model, the video shape and the
    sampler's model files. A change to the training recipe (learning rate, epochs, EMA, GPUs)
    regenerates the epochs through their checkpoints, never the baseline."""
    from tav_pipeline.backends import registry

    sections = {name: b.generation_settings(train[name]) for name, b in sorted(registry().items()) if name in train}
    return {**_pick(train, GENERATION_KEYS), **sections}


def epoch_settings(train: dict[str, Any], epoch: int | str) -> dict[str, Any]:
    """``train:`` as the training job of ``epoch`` takes it: everything, with ``epochs`` cut to
    those up to ``epoch`` (the job trains from the one before it), so adding a later epoch leaves
    the earlier jobs as they are."""
    return {**train, "epochs": [e for e in epochs(train) if e <= int(epoch)]}


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


GENERATION_ONLY_ELSEWHERE = ("baselines", "prompt_set")
"""``generate:`` keys the trained model's generation does not read: the other models, and the
prompt set (which reaches it as its prompt files)."""


def generation_of_trained_model(generate: dict[str, Any]) -> dict[str, Any]:
    """``generate:`` as the rule ``generate_videos`` takes it: adding a baseline model or
    switching prompt files changes nothing here."""
    return {k: v for k, v in generate.items() if k not in GENERATION_ONLY_ELSEWHERE}


def prompt_files(results: str, generate: dict[str, Any], groups: list[str]) -> list[str]:
    """The prompt file of each group: TAV's test prompts (``results/prompts/{group}.txt``, rule
    ``build_tav``) or the paper's printed ones (``results/prompts/paper/{group}.txt``, rule
    ``write_paper_prompts``), as ``generate.prompt_set`` says."""
    folder = "prompts/paper" if generate.get("prompt_set", "tav") == "paper" else "prompts"
    return [f"{results}/{folder}/{g}.txt" for g in groups]


def generated_models(
    train: dict[str, Any], generate: dict[str, Any], keys: list[tuple[str, str, str]]
) -> dict[str, str]:
    """Which rule generates each (model, checkpoint, group) the tables and figures name:
    ``generate_videos`` for ``train.model``, ``generate_baseline_videos`` for the baseline of a
    model in ``generate.baselines``.

    Raises:
        ConfigError: a model no rule can generate, a baseline-only model asked for at an epoch,
            or a baseline with the post-trained model's name; all listed in one message.
    """
    from tav_pipeline.errors import ConfigError

    baselines = generate.get("baselines") or {}
    problems = []
    if train["model"] in baselines:
        problems.append(
            f"generate.baselines names {train['model']!r}, the post-trained model (train.model): give it another name"
        )
    rules: dict[str, str] = {}
    for model, checkpoint, group in keys:
        if model == train["model"]:
            if checkpoint == "baseline" and not generate.get("baseline", True):
                problems.append(f"{model}/baseline is asked for, but generate.baseline is false")
            rules[model] = "generate_videos"
        elif model in baselines:
            if checkpoint != "baseline":
                problems.append(f"{model}/{checkpoint}: {model} is a baseline-only model (generate.baselines); only its 'baseline' exists")
            rules[model] = "generate_baseline_videos"
        else:
            problems.append(
                f"{model!r} ({checkpoint}, group {group}) is named by the tables or figures, but no rule generates it: "
                f"add it to generate.baselines (a diffusers pipeline) or make it train.model"
            )
        if group not in [str(g) for g in generate["groups"]]:
            problems.append(f"{model}/{checkpoint} group {group!r} is not in generate.groups {generate['groups']}")
    if problems:
        raise ConfigError("tables / report.frame_strips / generate", "; ".join(dict.fromkeys(problems)))
    return rules
