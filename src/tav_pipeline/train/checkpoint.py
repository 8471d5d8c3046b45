"""Checkpoint folders: their layout, the epoch/step arithmetic, and finding the latest to resume.

Both backends write Open-Sora-Plan's checkpoint layout (``accelerator.save_state`` with save hooks),
so generation and resumption treat them alike::

    results/checkpoints/{model}/epoch_{N}/
        model/              the trained weights (diffusers ``save_pretrained`` layout)
        model_ema/          the EMA weights, same layout (what generation uses by default)
        pytorch_model/ ...  the optimizer, scheduler and RNG state that resumption needs
        train_state.json    epoch, global step, steps per epoch, the settings (written last)
        losses.tsv          one row per optimizer step (diffusers backend)

A job that trains epoch ``N`` resumes from epoch ``M`` (the configured epoch before it, 0 = the
pretrained model) and trains ``(N - M) * steps_per_epoch`` steps. While it runs it saves resumable
states as ``checkpoint-{step}`` in a work folder outside the rule's output (so a failed job keeps
them), and starts from the latest of those when it is run again ("resume from the latest
checkpoint", paper section 4). The final state is moved into the epoch folder.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tav_pipeline.errors import MissingAssetError

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
STATE_FILE = "train_state.json"
MODEL_DIR = "model"
EMA_DIR = "model_ema"
LOSSES_FILE = "losses.tsv"
_STEP = re.compile(rf"^{PREFIX}(\d+)$")


@dataclass
class TrainState:
    """Contents of ``train_state.json``."""

    model: str
    backend: str
    epoch: int
    global_step: int
    steps_per_epoch: int
    usable_clips: int
    base: str
    """The pretrained model the run started from."""
    resumed_from: str = ""
    seconds: float = 0.0
    """Wall time of the job that wrote this state."""
    settings: dict[str, Any] = field(default_factory=dict)
    num_processes: int = 1
    """Data-parallel processes that trained it (``train.num_gpus``): DeepSpeed's ZeRO optimizer
    state is saved in that many partitions and resumes only with as many processes."""
    learning_rate: float = 0.0
    """The rate the optimizer used (``train.learning_rate`` scaled by ``train.lr_scaling``)."""
    peak_gpu_memory_gib: list[float] = field(default_factory=list)
    """Peak memory allocated on each process's GPU so far in the job (diffusers backend; empty on a CPU)."""

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> TrainState:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            raise MissingAssetError(path, "train_model", "the checkpoint folder is incomplete")
        d = json.loads(path.read_text())
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class EpochJob:
    """What one training job does: epochs ``(start_epoch, end_epoch]``."""

    start_epoch: int
    end_epoch: int
    steps_per_epoch: int

    @property
    def start_step(self) -> int:
        return self.start_epoch * self.steps_per_epoch

    @property
    def end_step(self) -> int:
        return self.end_epoch * self.steps_per_epoch

    def save_steps(self, every: int = 0) -> list[int]:
        """Steps after which a resumable state is saved: every epoch end in the job, plus every
        ``every`` steps when ``every`` > 0."""
        steps = {e * self.steps_per_epoch for e in range(self.start_epoch + 1, self.end_epoch + 1)}
        if every > 0:
            steps |= set(range(self.start_step + every, self.end_step + 1, every))
        return sorted(s for s in steps if self.start_step < s <= self.end_step)

    def epoch_at(self, step: int) -> float:
        return step / self.steps_per_epoch


def step_of(path: str | Path) -> int | None:
    """The step in a ``checkpoint-{step}`` folder name, else ``None``."""
    m = _STEP.match(Path(path).name)
    return int(m.group(1)) if m else None


def is_complete(folder: str | Path) -> bool:
    """A state folder is complete once its ``train_state.json`` is written (ours, written last),
    or, for Open-Sora-Plan's own, once ``accelerator.save_state`` got to its last files (the
    weights in ``model/`` and the RNG states)."""
    p = Path(folder)
    if (p / STATE_FILE).is_file():
        return True
    return (p / MODEL_DIR / "config.json").is_file() and any(p.glob("random_states_*.pkl"))


def list_checkpoints(work_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete ``checkpoint-{step}`` folders (or links to them) in ``work_dir``, by step."""
    root = Path(work_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        step = step_of(p)
        if step is not None and p.is_dir() and is_complete(p):
            found.append((step, p))
    return sorted(found)


def latest_checkpoint(work_dir: str | Path, after_step: int = -1) -> tuple[int, Path] | None:
    """The latest complete checkpoint in ``work_dir`` past ``after_step``, if any."""
    later = [(s, p) for s, p in list_checkpoints(work_dir) if s > after_step]
    return later[-1] if later else None


def resume_source(
    work_dir: str | Path, previous_epoch_dir: str | Path | None, job: EpochJob, num_processes: int | None = None
) -> tuple[int, Path | None]:
    """Where a job starts: the latest state a failed run of this job left in ``work_dir``, else
    the previous epoch's folder, else nothing (the pretrained model).

    Arguments:
        num_processes: the processes this job runs (``train.num_gpus``); a state saved by another
            number is refused (its ZeRO optimizer partitions do not load). ``None``: not checked.

    Returns:
        ``(step, folder)``; ``(0, None)`` for a fresh start.

    Raises:
        MissingAssetError: the previous epoch's folder is required (``job.start_epoch`` > 0) but
            incomplete.
        ConfigError: the state was trained with another number of processes.
    """
    latest = latest_checkpoint(work_dir, after_step=job.start_step)
    if latest is not None and latest[0] <= job.end_step:
        log.info("resuming from %s (step %d, left by an earlier run of this job)", latest[1], latest[0])
        check_processes(latest[1], num_processes, f"or delete {Path(work_dir)} to restart this job")
        return latest
    if job.start_epoch == 0:
        return 0, None
    if previous_epoch_dir is None or not is_complete(previous_epoch_dir):
        raise MissingAssetError(
            previous_epoch_dir or f"epoch_{job.start_epoch}",
            "train_model",
            "the previous epoch's checkpoint is needed to resume",
        )
    state = TrainState.read(previous_epoch_dir) if (Path(previous_epoch_dir) / STATE_FILE).is_file() else None
    check_processes(previous_epoch_dir, num_processes, "or retrain from the first epoch")
    if state is not None and state.global_step != job.start_step:
        raise MissingAssetError(
            previous_epoch_dir,
            "train_model",
            f"it is at step {state.global_step}, this job expects {job.start_step} "
            f"({job.start_epoch} epochs x {job.steps_per_epoch} steps); the train split or train.epoch_steps changed: "
            "retrain from the first epoch",
        )
    return job.start_step, Path(previous_epoch_dir)


def check_processes(folder: str | Path, num_processes: int | None, remedy: str) -> None:
    """Refuse to resume ``folder`` with another number of processes than trained it (its
    ``train_state.json`` says how many; ``num_processes`` ``None``: no check)."""
    from tav_pipeline.errors import ConfigError

    if num_processes is None or not (Path(folder) / STATE_FILE).is_file():
        return
    saved = TrainState.read(folder).num_processes
    if saved != num_processes:
        raise ConfigError(
            "train.num_gpus",
            f"{folder} was trained by {saved} process(es), this job runs {num_processes}: DeepSpeed's ZeRO "
            f"optimizer state resumes only with as many processes; set train.num_gpus: {saved} {remedy}",
        )


def rotate(work_dir: str | Path, keep: int = 1) -> list[Path]:
    """Delete all but the ``keep`` latest real checkpoint folders in ``work_dir`` (links to other
    jobs' checkpoints are unlinked, never followed)."""
    removed = []
    items = list_checkpoints(work_dir)
    for _, path in items[: max(0, len(items) - keep)]:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path)
        removed.append(path)
    return removed


def finalize(state_dir: str | Path, out_dir: str | Path) -> Path:
    """Move a finished state into the rule's output folder (a rename on one file system)."""
    src, dst = Path(state_dir), Path(out_dir)
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    return dst


def weights_dir(checkpoint: str | Path, weights: str = "ema") -> Path:
    """The transformer weights of a checkpoint (``model_ema`` or ``model``).

    Raises:
        MissingAssetError: the folder is missing (EMA weights exist only when ``train.use_ema``).
    """
    sub = EMA_DIR if weights == "ema" else MODEL_DIR
    path = Path(checkpoint) / sub
    if not (path / "config.json").is_file():
        hint = "train with train.use_ema: true or set generate.weights: model" if weights == "ema" else ""
        raise MissingAssetError(path, "train_model", hint)
    return path
