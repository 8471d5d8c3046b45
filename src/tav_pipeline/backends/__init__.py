"""Model backends: what post-trains ``train.model`` and generates its test-prompt videos.

A backend is one subpackage of this package whose ``__init__`` defines ``BACKEND``, an object of
the :class:`Backend` protocol; ``train.backend`` names it. The rules ask it for everything that
differs between backends (the training rule's name, inputs, threads and conda env, the model files
training and generation read, the assets the run must fetch), and the rules' scripts hand it one
:class:`TrainJob` or :class:`GenerationJob`. Subpackages are found by name, so a new backend is a
new folder here plus its config (``train.<name>`` in the schema and config.yaml).

* :mod:`.diffusers`: any supported diffusers text-to-video pipeline (CogVideoX first), post-trained
  in this package from cached text and VAE latents.
* :mod:`.opensora`: Open-Sora-Plan v1.3.1's own trainer and sampler from a pinned checkout (the
  paper's setup).

Importing a backend's ``__init__`` must stay cheap (no torch): the workflow reads it when it parses.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tav_pipeline.backends.registry import names
from tav_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from tav_pipeline.locations import Asset
    from tav_pipeline.train.checkpoint import TrainState
    from tav_pipeline.train.config import TrainConfig


@dataclass(frozen=True)
class TrainJob:
    """One training job: the epochs ``(previous, epoch]`` of ``train.model``."""

    inputs: Mapping[str, Sequence[str]]
    """The rule's named inputs that :meth:`Backend.training_inputs` asked for (each a list of paths)."""
    previous_dir: str | Path | None
    """The checkpoint of the configured epoch before ``epoch`` (``None``: the pretrained model)."""
    checkpoint_dir: str | Path
    """``results/checkpoints/{model}/epoch_{epoch}``."""
    work_dir: str | Path
    """Scratch folder kept across failed runs."""
    train: Mapping[str, Any]
    """The ``train:`` section (epochs up to ``epoch``)."""
    epoch: int
    threads: int = 1
    outputs: Mapping[str, str] | None = None
    """Further outputs, by the names of :attr:`Backend.training_outputs`."""


@dataclass(frozen=True)
class GenerationJob:
    """One generation job: every group's test prompts through ``train.model`` at one checkpoint."""

    checkpoint_dir: str | Path | None
    """An epoch folder, or ``None`` for the baseline (the backend's pretrained model)."""
    prompt_files: Mapping[str, str | Path]
    out_dirs: Mapping[str, str | Path]
    train: Mapping[str, Any]
    generate: Mapping[str, Any]
    checkpoint: str
    """``baseline`` or ``epoch_{N}``, for the manifests."""
    work_dir: str | Path
    threads: int = 0


class Backend(Protocol):
    """What the workflow needs of a model backend."""

    name: str
    """The value of ``train.backend``, and the name of the backend's ``train.<name>`` section."""
    env: str
    """Its conda environment, ``envs/<env>.yaml``: training and generation run there."""
    training_rule: str
    """The name of the rule that runs :meth:`train` (its logs and benchmarks are filed under it)."""
    training_outputs: tuple[str, ...]
    """Outputs of a training job besides its checkpoint folder (``losses``: a per-step TSV)."""

    def training_threads(self, num_gpus: int) -> int:
        """CPU threads of a training job of ``num_gpus`` processes."""
        ...

    def training_inputs(self, results: str, train: Mapping[str, Any]) -> dict[str, str | list[str]]:
        """The files a training job reads that earlier rules prepare (paths under ``results``,
        with the wildcard ``{model}``), by input name."""
        ...

    def generation_settings(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """The keys of its ``train.<name>`` section that generation reads (the rule
        ``generate_videos`` reruns when one of them changes, and only then)."""
        ...

    def model_paths(self, train: Mapping[str, Any]) -> list[str]:
        """The pretrained model files (folders) training and generation read."""
        ...

    def assets(self, train: Mapping[str, Any], results: str) -> list[Asset]:
        """The external files the run must fetch or find in place, and the rule that fetches each."""
        ...

    def check(self, cfg: TrainConfig) -> None:
        """Pre-launch checks of the settings and the model files; raise before any GPU work."""
        ...

    def train(self, job: TrainJob) -> TrainState:
        """Run one training job; return the state written with the checkpoint."""
        ...

    def generate(self, job: GenerationJob) -> dict[str, list[Path]]:
        """Run one generation job; return group -> the videos written."""
        ...


def backend(name: str) -> Backend:
    """The backend ``name`` (``train.backend``).

    Raises:
        ConfigError: naming ``train.backend`` when there is no such backend.
    """
    if name not in names():
        raise ConfigError("train.backend", f"unknown backend {name!r} ({', '.join(names())})")
    found: Backend = importlib.import_module(f"{__name__}.{name}").BACKEND
    return found


def registry() -> dict[str, Backend]:
    """Every backend by name."""
    return {n: backend(n) for n in names()}


def generate_videos_step(
    checkpoint_dir: str | Path | None,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    train: dict[str, Any],
    generate: dict[str, Any],
    checkpoint: str = "",
    work_dir: str | Path | None = None,
    threads: int = 0,
) -> dict[str, list[Path]]:
    """Rule ``generate_videos``: every group's test prompts through ``train.backend``'s sampler.

    Arguments:
        checkpoint_dir: an epoch folder, or ``None`` for the baseline.
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/{checkpoint}/{group}``.
        train, generate: the config sections.
        checkpoint: the checkpoint's name for the manifests.
        work_dir: scratch folder (default: ``.work`` beside the group folders).
        threads: torch CPU threads (0: torch's default).

    Returns:
        group -> the videos written.
    """
    job = GenerationJob(
        checkpoint_dir=checkpoint_dir,
        prompt_files=prompt_files,
        out_dirs=out_dirs,
        train=train,
        generate=generate,
        checkpoint=checkpoint or ("baseline" if checkpoint_dir is None else Path(checkpoint_dir).name),
        work_dir=work_dir or Path(next(iter(out_dirs.values()))).parent / ".work",
        threads=threads,
    )
    return backend(train["backend"]).generate(job)
