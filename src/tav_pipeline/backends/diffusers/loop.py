"""The diffusers backend's trainer: the paper's recipe on any supported diffusers text-to-video model.

Recipe (paper section 4, as Open-Sora-Plan v1.3's trainer implements it): v-prediction target,
min-SNR-gamma weighting with gamma 5 (:mod:`tav_pipeline.backends.diffusers.loss`), uniform timesteps, EMA of the
weights with decay 0.9999 from step 0 (diffusers' ``EMAModel``: its decay ramps as
``(1 + s) / (10 + s)`` and is capped at 0.9999), AdamW at 1e-5 with a constant schedule, bf16 mixed
precision, gradient checkpointing, batch size 1, caption dropout 0.1, gradient clipping 1.0,
DeepSpeed ZeRO stage 2 in one process through accelerate. Beyond the paper, ``train.num_gpus``
processes (one per GPU) share each step's global batch; every sample's random draws come from
its own seed, so N processes x batch B train as one process x batch N*B.

Two halves:

* :func:`train_model_step` (the rule ``train_model``) plans a job (epochs ``(M, N]``, where to
  resume), writes the launch files and runs ``accelerate launch -m tav_pipeline.backends.diffusers.loop
  plan.json``, then moves the final state into ``results/checkpoints/{model}/epoch_{N}``.
* :func:`run_training` is what runs inside the launched process. Tests call it in-process.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tav_pipeline.errors import ConfigError, MissingAssetError, TrainingError
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import TrainConfig

log = logging.getLogger(__name__)

LOSS_COLUMNS = ["step", "epoch", "loss", "timestep", "weight", "lr", "clip", "dropped", "seconds"]


@dataclass
class TrainPlan:
    """Everything the launched trainer needs (written to ``plan.json`` in the work folder)."""

    config: dict[str, Any]
    pretrained: str
    tav_json: str
    latents_dir: str
    """Empty: encode videos and prompts on the fly."""
    work_dir: str
    resume_dir: str
    """Empty: start from the pretrained weights."""
    resume_step: int
    start_epoch: int
    end_epoch: int
    steps_per_epoch: int
    usable_clips: int

    @property
    def job(self) -> ckpt.EpochJob:
        return ckpt.EpochJob(self.start_epoch, self.end_epoch, self.steps_per_epoch)

    def write(self, path: str | Path) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> TrainPlan:
        return cls(**json.loads(Path(path).read_text()))


def usable_clips(tav_json: str | Path, latents_dir: str | Path | None, cfg: TrainConfig) -> int:
    """How many train clips an epoch passes over (from the cache when there is one)."""
    if latents_dir:
        from tav_pipeline.backends.diffusers.latents import read_index

        return len(read_index(latents_dir, cfg, cfg.diffusers.pretrained)["items"])
    from tav_pipeline.backends.diffusers.latents import plan_clips, train_items

    usable, _ = plan_clips(train_items(json.loads(Path(tav_json).read_text())), cfg)
    return len(usable)


def plan_job(
    tav_json: str | Path,
    latents_dir: str | Path | None,
    previous_dir: str | Path | None,
    work_dir: str | Path,
    cfg: TrainConfig,
    epoch: int,
) -> TrainPlan:
    """The plan of the job that trains up to ``epoch`` (``cfg.num_gpus`` processes)."""
    n = usable_clips(tav_json, latents_dir, cfg)
    if n == 0:
        raise ConfigError("train", "no usable train clip")
    job = ckpt.EpochJob(cfg.previous_epoch(epoch), epoch, cfg.steps_per_epoch(n))
    step, source = ckpt.resume_source(
        work_dir, previous_dir, job, cfg.num_gpus if cfg.distributed == "deepspeed" else None
    )
    return TrainPlan(
        config=cfg.to_dict(),
        pretrained=cfg.diffusers.pretrained,
        tav_json=str(tav_json),
        latents_dir=str(latents_dir or ""),
        work_dir=str(work_dir),
        resume_dir=str(source or ""),
        resume_step=step,
        start_epoch=job.start_epoch,
        end_epoch=job.end_epoch,
        steps_per_epoch=job.steps_per_epoch,
        usable_clips=n,
    )


def train_model_step(
    tav_json: str | Path,
    latents_dir: str | Path | None,
    previous_dir: str | Path | None,
    out_dir: str | Path,
    work_dir: str | Path,
    train: dict[str, Any],
    epoch: int,
    threads: int = 1,
    losses_tsv: str | Path | None = None,
    launch: bool = True,
) -> ckpt.TrainState:
    """Rule ``train_model``: train epochs ``(previous, epoch]`` through ``accelerate launch``.

    Arguments:
        tav_json: ``results/tav.json``.
        latents_dir: the latent cache (``None``/empty when ``train.diffusers.cache_latents`` is off).
        previous_dir: the checkpoint of the configured epoch before ``epoch`` (``None`` for the first).
        out_dir: ``results/checkpoints/{model}/epoch_{epoch}``.
        work_dir: scratch folder kept across failed runs (resumable states, launch files).
        train: the ``train:`` config section.
        epoch: the epoch to reach.
        threads: CPU threads for the trainer, shared by its ``train.num_gpus`` processes.
        losses_tsv: where to copy the checkpoint's ``losses.tsv`` (the rule's report output).
        launch: run the trainer through ``accelerate launch`` (the rule); ``False`` runs
            :func:`run_training` in this process with accelerate's defaults (tests; one process).

    Returns:
        the state written with the checkpoint.
    """
    from tav_pipeline.devices import resolve_device
    from tav_pipeline.train.accelerate_config import check_gpus, launch_env, write_launch_files
    from tav_pipeline.train.process import run_logged

    cfg = TrainConfig.from_dict(train)
    if cfg.backend != "diffusers":
        raise ConfigError("train.backend", "train_model runs the diffusers backend; opensora runs in train_opensora")
    if not launch and cfg.num_gpus > 1:
        raise ConfigError("train.num_gpus", f"{cfg.num_gpus} processes need the launcher (launch=True)")
    work = Path(work_dir)
    plan = plan_job(tav_json, latents_dir or None, previous_dir, work, cfg, epoch)
    plan_path = plan.write(work / "plan.json")
    log.info(
        "epochs %d -> %d: %d usable clips, %d process(es) x batch %d = global batch %d, learning rate %g "
        "(lr_scaling %s), %d steps per epoch (epoch_steps=%s), steps %d -> %d, resume from %s",
        plan.start_epoch,
        plan.end_epoch,
        plan.usable_clips,
        cfg.num_gpus,
        cfg.batch_size,
        cfg.global_batch_size,
        cfg.effective_learning_rate,
        cfg.lr_scaling,
        plan.steps_per_epoch,
        cfg.epoch_steps,
        plan.resume_step,
        plan.job.end_step,
        plan.resume_dir or "the pretrained model",
    )
    final = work / f"{ckpt.PREFIX}{plan.job.end_step}"
    if plan.resume_step < plan.job.end_step and not launch:
        run_training(plan)
    elif plan.resume_step < plan.job.end_step:
        use_cpu = resolve_device(cfg.diffusers.device, key="train.diffusers.device") == "cpu"
        if not use_cpu:
            check_gpus(cfg.num_gpus, "train_model")
        files = write_launch_files(work / "launch", cfg, use_cpu=use_cpu, num_processes=cfg.num_gpus)
        log.info(
            "accelerate: %s, %d process(es) on %s",
            f"DeepSpeed ZeRO stage {cfg.zero_stage}"
            if files.deepspeed_json
            else "plain (no DeepSpeed; train.distributed: plain)",
            cfg.num_gpus,
            "the CPU" if use_cpu else f"{cfg.num_gpus} GPU(s)",
        )
        argv = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(files.accelerate_yaml),
            "--num_cpu_threads_per_process",
            str(max(1, threads // cfg.num_gpus)),
            "-m",
            "tav_pipeline.backends.diffusers.loop",
            str(plan_path),
        ]
        run_logged(argv, env=launch_env(use_cpu))
    if not ckpt.is_complete(final):
        raise MissingAssetError(final, "train_model", "the trainer ended without saving its last step")
    ckpt.finalize(final, out_dir)
    shutil.rmtree(work, ignore_errors=True)
    if losses_tsv:
        Path(losses_tsv).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(out_dir) / ckpt.LOSSES_FILE, losses_tsv)
    state = ckpt.TrainState.read(out_dir)
    log.info("epoch %d saved to %s (step %d)", state.epoch, out_dir, state.global_step)
    return state


def _skip_cpu_shm_kernel() -> None:
    """DeepSpeed on a CPU JIT-compiles a shared-memory all-reduce kernel when it starts (minutes
    on a small machine). Only its inference all-reduce uses it; training reduces through the
    process group (gloo) either way."""
    import importlib

    module: Any = importlib.import_module("deepspeed.comm.torch")
    if hasattr(module, "build_shm_op"):
        module.build_shm_op = lambda: None
        log.info(
            "CPU: DeepSpeed's shared-memory all-reduce kernel is not built (only inference uses it)"
        )


def _uses_deepspeed() -> bool:
    import os

    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


@dataclass
class Trainer:
    """A prepared model, its optimizer, schedule and EMA, and one optimizer step of the recipe."""

    accelerator: Any
    family: Any
    scheduler: Any
    transformer: Any
    model_config: Any
    optimizer: Any
    lr_scheduler: Any
    ema: Any
    cfg: TrainConfig
    deepspeed: bool

    @property
    def input_dtype(self) -> Any:
        """DeepSpeed keeps bf16/fp16 weights, so inputs must match; accelerate's autocast
        (plain) takes fp32 inputs."""
        import torch

        if not self.deepspeed:
            return torch.float32
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.mixed_precision, torch.float32)

    def draws(self, moments: Any, seeds: Sequence[int], scaling: float) -> tuple[Any, Any, Any]:
        """Each sample's random draws, from its own seed: a latent from the VAE posterior
        ``moments`` (times ``scaling``), the noise, and a uniform timestep. Returns
        ``(latents, noise, timesteps)`` for the batch."""
        import torch

        from tav_pipeline.backends.diffusers.loss import sample_timesteps

        latents, noises, timesteps = [], [], []
        for m, seed in zip(moments, seeds, strict=True):
            gen = torch.Generator(device=m.device).manual_seed(int(seed))
            latent = self.family.sample_latents(m[None], scaling, gen)
            latents.append(latent)
            noises.append(torch.randn(latent.shape, generator=gen, device=latent.device, dtype=latent.dtype))
            timesteps.append(sample_timesteps(self.scheduler, 1, latent.device, gen))
        return torch.cat(latents), torch.cat(noises), torch.cat(timesteps)

    def step(self, latents: Any, noise: Any, timesteps: Any, embeds: Any) -> tuple[Any, Any]:
        """Noise ``latents`` at ``timesteps``, predict, take the min-SNR-weighted loss, step the
        optimizer, the schedule and the EMA. Returns ``(loss, weights)``; with several processes
        the gradients (so the step) are those of the mean loss over the global batch."""
        from tav_pipeline.backends.diffusers.loss import diffusion_loss

        cfg = self.cfg
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        prediction = self.family.denoise(
            self.transformer,
            self.model_config,
            noisy.to(self.input_dtype),
            timesteps,
            embeds.to(self.input_dtype),
            height=cfg.height,
            width=cfg.width,
        )
        loss, weights = diffusion_loss(
            self.scheduler,
            prediction,
            latents,
            noise,
            timesteps,
            gamma=cfg.snr_gamma,
            prediction_type=cfg.prediction_type,
        )
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and not self.deepspeed and cfg.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.transformer.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.transformer.parameters())
        return loss, weights


STATE_BYTES_PER_PARAMETER = {"plain": 20.0, "deepspeed": 8.0, "deepspeed_sharded": 16.0}
"""Training state per transformer parameter, the estimate ``gradient_checkpointing: auto`` adds to
its measured probe. ``plain``: fp32 weights, fp32 gradients, Adam's two moments, the fp32 EMA copy
(4 + 4 + 8 + 4). DeepSpeed ZeRO-2: bf16 weights and gradients, the fp32 EMA copy (2 + 2 + 4) in
every process, plus the fp32 master weights and Adam's moments (4 + 4 + 8), divided among the
processes."""
AUTO_MEMORY_MARGIN = 0.85
"""``auto`` keeps checkpointing off only when the estimate stays under this share of the GPU's memory
(allocator fragmentation, DeepSpeed's buckets and the CUDA context take the rest)."""


def checkpointing_decision(
    setting: bool | str,
    *,
    device_type: str,
    probe_bytes: int | None,
    parameters: int,
    deepspeed: bool,
    processes: int,
    ema: bool,
    total_bytes: int,
) -> tuple[bool, str]:
    """Whether to checkpoint, and why. ``probe_bytes``: the memory one forward and backward at the
    training shape took beyond the weights, without checkpointing (``None``: the probe ran out of
    memory). ``auto`` is off on a CPU; on a GPU it is off when the probe plus the training state
    (:data:`STATE_BYTES_PER_PARAMETER`) fit in :data:`AUTO_MEMORY_MARGIN` of ``total_bytes``."""
    if setting is True or setting is False:
        return bool(setting), "train.gradient_checkpointing is set"
    if device_type != "cuda":
        return False, "auto on a CPU: memory is not the limit there"
    if probe_bytes is None:
        return True, "auto: one step without checkpointing did not fit in the probe"
    if deepspeed:
        per_param = STATE_BYTES_PER_PARAMETER["deepspeed"] + STATE_BYTES_PER_PARAMETER["deepspeed_sharded"] / processes
    else:
        per_param = STATE_BYTES_PER_PARAMETER["plain"]
    if not ema:
        per_param -= 4.0
    need = parameters * per_param + probe_bytes
    fits = need <= AUTO_MEMORY_MARGIN * total_bytes
    why = (
        f"auto: estimated {need / 2**30:.1f} GiB (state {parameters * per_param / 2**30:.1f} + probed step "
        f"{probe_bytes / 2**30:.1f}) {'fits in' if fits else 'exceeds'} {AUTO_MEMORY_MARGIN:.0%} of "
        f"{total_bytes / 2**30:.1f} GiB"
    )
    return not fits, why


def probe_step_memory(cfg: TrainConfig, family: Any, transformer: Any, device: Any) -> int | None:
    """Bytes one forward and backward of ``transformer`` (on ``device``, checkpointing off) takes at
    the training shape and batch beyond its weights: activations plus gradients, measured with
    ``torch.cuda.max_memory_allocated`` (the gradients are counted again in the state estimate,
    so the estimate errs towards checkpointing). ``None`` when it runs out of memory (then nothing is left
    allocated)."""
    import torch

    from tav_pipeline.backends.diffusers.latents import max_sequence_length

    config = transformer.config
    spatial = family.vae_spatial
    shape = (cfg.batch_size, family.latent_frames(cfg.num_frames), config.in_channels, cfg.height // spatial, cfg.width // spatial)
    text = (cfg.batch_size, max_sequence_length(cfg, config), config.text_embed_dim)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision)
    transformer.to(device)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result: int | None
    try:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            noisy = torch.randn(shape, device=device)
            timesteps = torch.full((cfg.batch_size,), 500, device=device, dtype=torch.long)
            embeds = torch.randn(text, device=device)
            out = family.denoise(transformer, config, noisy, timesteps, embeds, height=cfg.height, width=cfg.width)
            out.float().square().mean().backward()
        torch.cuda.synchronize(device)
        result = torch.cuda.max_memory_allocated(device) - before
    except torch.cuda.OutOfMemoryError:
        result = None
    transformer.zero_grad(set_to_none=True)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return result


def resolve_checkpointing(cfg: TrainConfig, accelerator: Any, family: Any, transformer: Any) -> bool:
    """``train.gradient_checkpointing`` as a yes/no for this run; ``auto`` probes one step on the GPU
    (:func:`probe_step_memory`, :func:`checkpointing_decision`). Logs the decision."""
    import torch

    device = accelerator.device
    probe: int | None = 0
    total = 0
    if cfg.gradient_checkpointing == "auto" and device.type == "cuda":
        probe = probe_step_memory(cfg, family, transformer, device)
        total = torch.cuda.get_device_properties(device).total_memory
    on, why = checkpointing_decision(
        cfg.gradient_checkpointing,
        device_type=device.type,
        probe_bytes=probe,
        parameters=sum(p.numel() for p in transformer.parameters()),
        deepspeed=accelerator.distributed_type.name == "DEEPSPEED",
        processes=accelerator.num_processes,
        ema=cfg.use_ema,
        total_bytes=total,
    )
    log.info("gradient checkpointing %s (%s)", "on" if on else "off", why)
    return on


def prepare_trainer(
    cfg: TrainConfig, accelerator: Any, family: Any, scheduler: Any, transformer: Any, total_steps: int
) -> Trainer:
    """Gradient checkpointing, the EMA copy (from step 0), AdamW and the schedule, the save/load
    hooks that write ``model/`` and ``model_ema/``, then ``accelerator.prepare``."""
    import torch
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    family.check_shape(transformer.config, cfg.num_frames, cfg.height, cfg.width)
    transformer.requires_grad_(True)
    if resolve_checkpointing(cfg, accelerator, family, transformer):
        transformer.enable_gradient_checkpointing()
    transformer.train()
    model_cls = type(transformer)
    ema: Any = None
    if cfg.use_ema:
        ema = EMAModel(
            transformer.parameters(),
            decay=cfg.ema_decay,
            update_after_step=cfg.ema_start_step,
            model_cls=model_cls,
            model_config=transformer.config,
            foreach=True,  # one multi-tensor update instead of three kernels per parameter
        )
    optimizer = torch.optim.AdamW(
        transformer.parameters(),
        lr=cfg.effective_learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
        # one kernel per step on the GPU (under DeepSpeed: on its flat fp32 partition)
        fused=accelerator.device.type == "cuda",
    )
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler, optimizer=optimizer, num_warmup_steps=cfg.lr_warmup_steps, num_training_steps=total_steps
    )
    rng_devices = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []

    def save_hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        # EMAModel.save_pretrained builds a fresh model (random init): keep that off the training
        # RNG, or a run that saves at step k would continue differently from one that does not
        with torch.random.fork_rng(devices=rng_devices):
            if accelerator.is_main_process:
                if ema is not None:
                    ema.save_pretrained(str(Path(output_dir) / ckpt.EMA_DIR))
                for model in models:
                    accelerator.unwrap_model(model).save_pretrained(str(Path(output_dir) / ckpt.MODEL_DIR))
                    if weights:
                        weights.pop()

    def load_hook(models: list[Any], input_dir: str) -> None:
        if ema is not None:
            loaded = EMAModel.from_pretrained(str(Path(input_dir) / ckpt.EMA_DIR), model_cls)
            ema.load_state_dict(loaded.state_dict())
            ema.to(accelerator.device)
            del loaded
        while models:  # DeepSpeed loads its engine itself and passes no models here
            model = models.pop()
            source = model_cls.from_pretrained(str(Path(input_dir) / ckpt.MODEL_DIR))
            accelerator.unwrap_model(model).load_state_dict(source.state_dict())
            del source

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
    transformer, optimizer, lr_scheduler = accelerator.prepare(transformer, optimizer, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)
    deepspeed = accelerator.distributed_type.name == "DEEPSPEED"
    return Trainer(
        accelerator,
        family,
        scheduler,
        transformer,
        accelerator.unwrap_model(transformer).config,
        optimizer,
        lr_scheduler,
        ema,
        cfg,
        deepspeed,
    )


def run_training(plan: TrainPlan) -> Path:
    """Train from ``plan.resume_step`` to the end of ``plan.end_epoch`` and save every planned state.

    Runs inside ``accelerate launch`` (or in-process: then accelerate runs without DeepSpeed
    unless the ``ACCELERATE_*`` variables say otherwise).

    Returns:
        the folder of the last saved state (``work_dir/checkpoint-{end_step}``).
    """
    import os

    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from tav_pipeline.backends.diffusers.families import DTYPES, family_for
    from tav_pipeline.backends.diffusers.latents import (
        CachedClips,
        StreamSampler,
        VideoClips,
        collate,
        max_sequence_length,
        plan_clips,
        read_index,
        train_items,
    )
    from tav_pipeline.devices import resolve_device

    cfg = TrainConfig.from_dict(plan.config)
    job = plan.job
    work = Path(plan.work_dir)
    deepspeed = _uses_deepspeed()
    deepspeed_on_cpu = deepspeed and os.environ.get("DS_ACCELERATOR") == "cpu"
    if deepspeed_on_cpu:
        _skip_cpu_shm_kernel()
    handlers = []
    if deepspeed_on_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # accelerate finds no distributed backend for DeepSpeed on CPUs by itself (it would run
        # every process alone); name gloo, which DeepSpeed's CPU accelerator also picks
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        kwargs_handlers=handlers,
        project_config=ProjectConfiguration(project_dir=str(work)),
        # under `accelerate launch` the launch config picks the device (cpu=True would turn
        # DeepSpeed off); in-process, honour train.diffusers.device
        cpu=resolve_device(cfg.diffusers.device, key="train.diffusers.device") == "cpu" and not deepspeed,
    )
    log.info(
        "accelerate state: %s, process %d of %d, device %s, mixed precision %s",
        accelerator.distributed_type,
        accelerator.process_index,
        accelerator.num_processes,
        accelerator.device,
        accelerator.mixed_precision,
    )
    if accelerator.num_processes != cfg.num_gpus:
        raise ConfigError(
            "train.num_gpus",
            f"the trainer runs in {accelerator.num_processes} process(es) but train.num_gpus is {cfg.num_gpus} "
            "(the steps per epoch were planned for that many)",
        )
    set_seed(cfg.seed)
    if cfg.diffusers.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True

    d = cfg.diffusers
    family = family_for(plan.pretrained, d.revision, cfg.prediction_type)
    scheduler = family.load_scheduler(plan.pretrained, d.revision)
    transformer = family.load_transformer(plan.pretrained, d.revision)
    trainer = prepare_trainer(cfg, accelerator, family, scheduler, transformer, total_steps=job.end_step)
    model_config = trainer.model_config
    step = 0
    if plan.resume_dir:
        accelerator.load_state(plan.resume_dir)
        step = plan.resume_step
        log.info("resumed at step %d from %s", step, plan.resume_dir)

    # Data: cached latents, or videos encoded every step.
    encoders = None
    if plan.latents_dir:
        index = read_index(plan.latents_dir, cfg, plan.pretrained)
        dataset: Any = CachedClips(plan.latents_dir, index, cfg.seed, cfg.text_drop_prob)
        scaling = float(index["scaling_factor"])
    else:
        plans, _ = plan_clips(train_items(json.loads(Path(plan.tav_json).read_text())), cfg)
        dataset = VideoClips(plans, cfg)
        encoders = family.load_encoders(plan.pretrained, d.revision, accelerator.device, DTYPES[d.encode_dtype])
        scaling = family.latent_scaling(encoders)
        seq_len = max_sequence_length(cfg, model_config)
    sampler = StreamSampler(step, job.end_step, cfg.batch_size, accelerator.process_index, accelerator.num_processes)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=d.dataloader_num_workers,
        generator=torch.Generator(),
        persistent_workers=False,
        pin_memory=accelerator.device.type == "cuda",  # lets the copies below run asynchronously
    )
    save_steps = set(job.save_steps(cfg.checkpointing_steps))
    rows = _previous_losses(plan.resume_dir)
    started = time.time()
    bar = tqdm(
        total=job.end_step,
        initial=step,
        desc=f"train epochs {job.start_epoch}->{job.end_epoch}",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    log_every = max(1, job.steps_per_epoch // 10)
    t0 = time.time()
    for batch in loader:
        if encoders is None:
            moments = batch["params"].to(accelerator.device, non_blocking=True)
            embeds = batch["embeds"].to(accelerator.device, non_blocking=True)
        else:
            moments = family.encode_video(encoders, batch["video"])
            embeds = family.encode_prompts(encoders, list(batch["prompt"]), seq_len)
        latents, noise, timesteps = trainer.draws(moments, batch["seed"], scaling)
        loss, weights = trainer.step(latents, noise, timesteps, embeds)
        step += 1
        # one device-to-host copy (one synchronisation) per step: the loss averaged over the
        # processes, this process's first timestep and weight
        stats = torch.stack([loss.detach().float().reshape(()), timesteps[0].float(), weights[0].float()])
        losses, (timestep, weight) = accelerator.gather(stats[:1]), stats[1:].tolist()
        value = float(losses.mean())
        if not math.isfinite(value):
            raise TrainingError(f"loss is {value} at step {step}")
        now = time.time()
        rows.append(
            {
                "step": step,
                "epoch": round(job.epoch_at(step), 4),
                "loss": value,
                "timestep": int(timestep),
                "weight": weight,
                "lr": trainer.lr_scheduler.get_last_lr()[0],
                "clip": int(batch["clip"][0]),
                "dropped": int(bool(batch["dropped"][0])),
                "seconds": round(now - t0, 4),  # the whole step, data loading included
            }
        )
        t0 = now
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
        if step % log_every == 0:
            log.info(
                "step %d (epoch %.2f): loss %.5f, t=%d, w=%.4f",
                step,
                job.epoch_at(step),
                value,
                int(timestep),
                weight,
            )
        if step in save_steps:
            _save(accelerator, work, step, plan, cfg, rows, time.time() - started)
            t0 = time.time()
    bar.close()
    if step != job.end_step:
        raise TrainingError(f"the data stream ended at step {step}, expected {job.end_step}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return work / f"{ckpt.PREFIX}{job.end_step}"


def _previous_losses(resume_dir: str) -> list[dict[str, Any]]:
    if not resume_dir or not (Path(resume_dir) / ckpt.LOSSES_FILE).is_file():
        return []
    with (Path(resume_dir) / ckpt.LOSSES_FILE).open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _save(
    accelerator: Any,
    work: Path,
    step: int,
    plan: TrainPlan,
    cfg: TrainConfig,
    rows: list[dict[str, Any]],
    seconds: float,
) -> Path:
    """Save a resumable state as ``checkpoint-{step}``; ``train_state.json`` goes last, after
    every process has written its part."""
    import torch

    path = work / f"{ckpt.PREFIX}{step}"
    accelerator.save_state(str(path))
    peaks: list[float] = []
    if accelerator.device.type == "cuda":
        peak = torch.tensor([torch.cuda.max_memory_allocated(accelerator.device) / 2**30], device=accelerator.device)
        peaks = [round(float(p), 2) for p in accelerator.gather(peak)]
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with (path / ckpt.LOSSES_FILE).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOSS_COLUMNS, delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)
        ckpt.TrainState(
            model=cfg.model,
            backend="diffusers",
            epoch=step // plan.steps_per_epoch if step % plan.steps_per_epoch == 0 else -1,
            global_step=step,
            steps_per_epoch=plan.steps_per_epoch,
            usable_clips=plan.usable_clips,
            base=plan.pretrained,
            resumed_from=plan.resume_dir,
            seconds=round(seconds, 2),
            settings=plan.config,
            num_processes=accelerator.num_processes,
            learning_rate=cfg.effective_learning_rate,
            peak_gpu_memory_gib=peaks,
        ).write(path)
        ckpt.rotate(work, keep=1)
        log.info("saved %s", path)
    accelerator.wait_for_everyone()
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the launched process: ``python -m tav_pipeline.backends.diffusers.loop plan.json``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if len(args) != 1:
        log.error("usage: python -m tav_pipeline.backends.diffusers.loop PLAN_JSON")
        return 2
    run_training(TrainPlan.read(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
