"""Rule ``train_opensora``: one job trains the epochs ``(previous, epoch]`` with Open-Sora-Plan's
own trainer, relaunching it once per epoch (or once, over a repeated annotation) and checking its
saves and its dataset count as it runs."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tav_pipeline.backends.opensora.annotation import plan_annotation, read_data_txt, write_annotation
from tav_pipeline.backends.opensora.checks import check_checkout, check_settings, check_weights
from tav_pipeline.backends.opensora.commands import checkout_env, executable, train_argv
from tav_pipeline.backends.opensora.upstream import FILTER_LINE
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import TrainConfig

log = logging.getLogger(__name__)

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
        argv[0] = executable("accelerate")
        run_logged(argv, env=checkout_env(repo), cwd=repo, on_line=_filter_check(expected))
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
        m = FILTER_LINE.search(line)
        if m and int(m.group(2)) != expected:
            raise ConfigError(
                "train",
                f"Open-Sora-Plan kept {m.group(2)} of {m.group(1)} clips, the plan expected {expected}; epochs would be mislabelled",
            )

    return check
