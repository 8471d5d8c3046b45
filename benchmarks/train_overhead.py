"""Seconds per training step of the rule's path against a bare PyTorch loop of the same math, in one
call, and a profile of where the rule's path spends the difference.

    python benchmarks/train_overhead.py --out benchmarks/        # one GPU, about 4 minutes
    python benchmarks/train_overhead.py --smoke                  # tiny shapes on the CPU, seconds

Rows (each in its own process, on the same weights, latent cache and shape):

* ``rule``: ``accelerate launch`` of :func:`tav_pipeline.backends.diffusers.loop.run_training` with the launch
  files the rule ``train_model`` writes (DeepSpeed ZeRO-2 in one process, bf16, EMA, gradient
  checkpointing on, the paper's settings), reading the latent cache through its DataLoader. Only
  the final save (about 30 GB at this size) is left out. Seconds per step are the trainer's own
  ``losses.tsv`` column (the whole step, data loading included), median after ``--warmup``.
* ``rule_auto``: the same with ``train.gradient_checkpointing: auto`` (its decision is printed).
* ``rule_plain``, ``rule_plain_auto``: the same two with ``train.distributed: plain`` (accelerate's
  bf16 autocast over fp32 weights, no DeepSpeed; the same math in one process).
* ``bare_ckpt`` / ``bare``: the floor. A plain loop over the same transformer: fp32 weights under
  bf16 autocast, the same draws (posterior sample, noise, uniform timestep), v target with min-SNR-5
  weights, backward, gradient clipping at 1.0, fused AdamW, a foreach-lerp fp32 EMA, one host sync
  per step; with and without gradient checkpointing. Inputs sit on the GPU already.

With ``--profile N`` (default 3), the ``rule`` row's last N steps run under ``torch.profiler``; the
table of its annotated phases (data, draws, forward, backward, optimizer, EMA) and the top kernels
is printed and stored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

PHASES = (
    "tav:data",
    "tav:draws",
    "tav:forward+loss",
    "tav:backward",
    "tav:engine.backward",
    "tav:engine.step",
    "tav:optimizer",
    "tav:ema",
)


def train_settings(pipe: Path, smoke: bool, steps: int, checkpointing: Any) -> dict[str, Any]:
    from train_multi_gpu import settings

    train = settings(pipe, smoke, steps)
    train["gradient_checkpointing"] = checkpointing
    return train


# ---------------------------------------------------------------- the rule's path (launched)


def rule_worker(args: argparse.Namespace) -> None:
    """Inside ``accelerate launch``: run_training on the plan with the final save left out, the
    phases annotated for the profiler."""
    import logging

    import torch

    from tav_pipeline.train import loop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    plan = loop.TrainPlan.read(args.plan)
    rows: list[dict[str, Any]] = []
    decision: list[bool] = []

    def no_save(accelerator: Any, work: Path, step: int, plan: Any, cfg: Any, r: list, seconds: float) -> Path:
        rows[:] = list(r)
        return work

    loop._save = no_save  # type: ignore[assignment]
    resolve = loop.resolve_checkpointing

    def recording(*a: Any, **k: Any) -> bool:
        decision.append(resolve(*a, **k))
        return decision[-1]

    loop.resolve_checkpointing = recording  # type: ignore[assignment]
    prof: Any = None
    total = plan.steps_per_epoch
    if args.profile:
        from torch.profiler import ProfilerActivity, profile, schedule

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        prof = profile(activities=activities, schedule=schedule(wait=total - args.profile - 1, warmup=1, active=args.profile))
    prepare = loop.prepare_trainer

    def annotated(*a: Any, **k: Any) -> Any:
        trainer = prepare(*a, **k)
        rf = torch.profiler.record_function
        step, draws = trainer.step, trainer.draws
        family = trainer.family
        denoise, backward = family.denoise, trainer.accelerator.backward
        opt_step = trainer.optimizer.step

        def wrap(name: str, fn: Any) -> Any:
            def inner(*x: Any, **y: Any) -> Any:
                with rf(name):
                    return fn(*x, **y)

            return inner

        family.denoise = wrap("tav:forward+loss", denoise)
        trainer.accelerator.backward = wrap("tav:backward", backward)
        trainer.optimizer.step = wrap("tav:optimizer", opt_step)
        if trainer.ema is not None:
            trainer.ema.step = wrap("tav:ema", trainer.ema.step)
        if trainer.deepspeed:  # accelerator.backward runs DeepSpeed's backward and its optimizer step
            engine = trainer.transformer
            engine.backward = wrap("tav:engine.backward", engine.backward)
            engine.step = wrap("tav:engine.step", engine.step)
        trainer.draws = wrap("tav:draws", draws)

        def stepped(*x: Any, **y: Any) -> Any:
            out = step(*x, **y)
            if prof is not None:
                prof.step()
            return out

        trainer.step = stepped
        return trainer

    loop.prepare_trainer = annotated  # type: ignore[assignment]
    if prof is not None:
        prof.start()
    loop.run_training(plan)
    if prof is not None:
        prof.stop()
    out: dict[str, Any] = {
        "seconds": [float(r["seconds"]) for r in rows],
        "losses": [float(r["loss"]) for r in rows],
        "checkpointing": decision[0] if decision else None,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan"),
    }
    if prof is not None:
        out["profile"] = profile_summary(prof, args.profile)
    Path(args.json).write_text(json.dumps(out))


def profile_summary(prof: Any, steps: int) -> dict[str, Any]:
    """Per step: each annotated phase's host and device time, and the top device kernels."""
    averages = prof.key_averages()

    def device_us(e: Any) -> float:
        return float(getattr(e, "device_time_total", 0.0) or getattr(e, "cuda_time_total", 0.0) or 0.0)

    def self_device_us(e: Any) -> float:
        return float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0) or 0.0)

    phases = {}
    for e in averages:
        if e.key in PHASES or e.key.startswith("ProfilerStep") or "DataLoader" in e.key:
            key = "tav:data" if "DataLoader" in e.key else ("step" if e.key.startswith("ProfilerStep") else e.key)
            p = phases.setdefault(key, {"host_ms": 0.0, "device_ms": 0.0, "calls": 0})
            p["host_ms"] += e.cpu_time_total / 1000 / steps
            p["device_ms"] += device_us(e) / 1000 / steps
            p["calls"] += e.count
    kernels = sorted(
        ({"name": e.key[:90], "device_ms": self_device_us(e) / 1000 / steps, "calls": e.count / steps} for e in averages),
        key=lambda k: -k["device_ms"],
    )[:25]
    launches = sum(e.count for e in averages if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")) / steps
    syncs = sum(e.count for e in averages if "Synchronize" in e.key or e.key == "cudaMemcpyAsync") / steps
    device_busy = sum(self_device_us(e) for e in averages) / 1000 / steps
    return {"phases": phases, "kernels": kernels, "launches_per_step": launches, "sync_or_copy_calls_per_step": syncs,
            "device_busy_ms_per_step": device_busy}


# ---------------------------------------------------------------- the floor


def bare_worker(args: argparse.Namespace) -> None:
    """The simplest honest loop of the same math (see the module docstring)."""
    import torch
    from diffusers import CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from tav_pipeline.train.loss import diffusion_loss

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    model = CogVideoXTransformer3DModel.from_pretrained(args.pipe, subfolder="transformer").to(device)
    scheduler = CogVideoXDDIMScheduler.from_pretrained(args.pipe, subfolder="scheduler")
    if args.checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2, eps=1e-15, fused=cuda)
    ema = [p.detach().clone() for p in params]
    cfg = model.config
    frames = (args.frames - 1) // 4 + 1
    h, w = args.height // 8, args.width // 8
    moments = torch.randn(1, frames, 2 * cfg.in_channels, h, w, device=device)
    embeds = torch.randn(1, cfg.max_text_seq_length, cfg.text_embed_dim, device=device)
    dtype = torch.bfloat16 if cuda else torch.float32
    times, losses = [], []
    total = args.steps
    for i in range(total):
        t0 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(i)
        mean, logvar = moments.chunk(2, dim=2)
        latents = (mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * torch.randn(mean.shape, generator=gen, device=device)) * 1.15258426
        noise = torch.randn(latents.shape, generator=gen, device=device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=gen, device=device)
        noisy = scheduler.add_noise(latents, noise, t)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            pred = model(hidden_states=noisy, encoder_hidden_states=embeds, timestep=t, return_dict=False)[0]
        loss, _ = diffusion_loss(scheduler, pred.float(), latents, noise, t, gamma=5.0, prediction_type="v_prediction")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        decay = min(0.9999, (1 + i) / (10 + i))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        losses.append(loss.item())  # the one host sync of the step
        times.append(time.perf_counter() - t0)
    out = {
        "seconds": times,
        "losses": losses,
        "checkpointing": bool(args.checkpointing),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
    }
    Path(args.json).write_text(json.dumps(out))


# ---------------------------------------------------------------- driver


ZERO_VARIANTS: dict[str, dict[str, Any]] = {
    "ov0": {"overlap_comm": False},
    "cg0": {"contiguous_gradients": False},
    "bk2e9": {"reduce_bucket_size": 2e9, "allgather_bucket_size": 2e9},
}
"""Row-name tokens (``rule_ov0_cg0``) that change the rule's ZeRO settings, to find what one
process pays for them."""


def run_row(name: str, args: argparse.Namespace, pipe: Path, tav: Path, latents: Path, work: Path) -> dict[str, Any]:
    from tav_pipeline.backends.diffusers.loop import plan_job
    from tav_pipeline.train.accelerate_config import launch_env, write_launch_files
    from tav_pipeline.train.config import TrainConfig

    out = work / f"{name}.json"
    steps = args.warmup + args.steps + (args.profile if name == "rule" else 0)
    if name.startswith("rule"):
        checkpointing: Any = "auto" if name.endswith("_auto") else True
        train = train_settings(pipe, args.smoke, steps, checkpointing)
        if name.startswith("rule_plain"):
            train["distributed"] = "plain"  # the rule's path without DeepSpeed (accelerate's bf16 autocast)
        cfg = TrainConfig.from_dict(train)
        plan = plan_job(tav, latents, None, work / name, cfg, 1)
        plan_path = plan.write(work / name / "plan.json")
        files = write_launch_files(work / name / "launch", cfg, use_cpu=args.smoke, num_processes=1)
        zero = {k: v for t in name.split("_")[1:] for k, v in ZERO_VARIANTS.get(t, {}).items()}
        if zero and files.deepspeed_json is not None:  # a DeepSpeed variant of the rule's own JSON
            ds = json.loads(files.deepspeed_json.read_text())
            ds["zero_optimization"].update(zero)
            files.deepspeed_json.write_text(json.dumps(ds, indent=2) + "\n")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(files.accelerate_yaml),
               "--num_cpu_threads_per_process", str(args.threads), __file__, "--worker", "rule", "--plan", str(plan_path),
               "--json", str(out), "--profile", str(args.profile if name == "rule" else 0)]
        env = {**os.environ, **launch_env(args.smoke)}
    else:
        cfg = TrainConfig.from_dict(train_settings(pipe, args.smoke, steps, True))
        cmd = [sys.executable, __file__, "--worker", "bare", "--pipe", str(pipe), "--json", str(out), "--steps", str(steps),
               "--frames", str(cfg.num_frames), "--height", str(cfg.height), "--width", str(cfg.width)]
        if name == "bare_ckpt":
            cmd.append("--checkpointing")
        env = dict(os.environ)
    started = time.time()
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0 or not out.is_file():
        sys.stderr.write(f"row {name} failed ({proc.returncode})\n")
        return {"row": name, "failed": proc.returncode}
    r = json.loads(out.read_text())
    timed = r["seconds"][args.warmup : args.warmup + args.steps]
    r.update(row=name, seconds_per_step=statistics.median(timed), mean=statistics.fmean(timed), job_seconds=time.time() - started)
    return r


def render(rows: list[dict[str, Any]], header: str) -> str:
    by = {r["row"]: r for r in rows}
    floor = by.get("bare_ckpt", rows[0])["seconds_per_step"]
    floor_off = by.get("bare", rows[0])["seconds_per_step"]
    lines = [header, "", "| row | checkpointing | s/step (median) | s/step (mean) | peak GiB | vs bare_ckpt | vs bare (no ckpt) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['row']} | {'on' if r['checkpointing'] else 'off'} | {r['seconds_per_step']:.3f} | {r['mean']:.3f} | "
            f"{r['peak_gib']:.1f} | {r['seconds_per_step'] / floor:.2f}x | {r['seconds_per_step'] / floor_off:.2f}x |"
        )
    prof = by.get("rule", {}).get("profile")
    if prof:
        lines += ["", f"profile of `rule`, per step ({prof['launches_per_step']:.0f} kernel launches, "
                  f"{prof['sync_or_copy_calls_per_step']:.0f} sync/copy calls, device busy {prof['device_busy_ms_per_step']:.0f} ms):",
                  "", "| phase | host ms | device ms | calls |", "|---|---|---|---|"]
        for k, v in prof["phases"].items():
            lines.append(f"| {k} | {v['host_ms']:.1f} | {v['device_ms']:.1f} | {v['calls']} |")
        lines += ["", "| top device ops (self) | ms/step | calls/step |", "|---|---|---|"]
        for k in prof["kernels"][:15]:
            lines.append(f"| `{k['name']}` | {k['device_ms']:.2f} | {k['calls']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="rule,rule_auto,rule_plain,rule_plain_auto,bare_ckpt,bare")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", type=int, default=3, help="profiled steps after the timed ones (rule row)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU")
    ap.add_argument("--out", type=Path, default=None, help="folder for train_overhead[.smoke].{md,json}")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--plan", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pipe", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=33, help=argparse.SUPPRESS)
    ap.add_argument("--height", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "rule":
        rule_worker(args)
        return 0
    if args.worker == "bare":
        bare_worker(args)
        return 0
    import logging

    import torch
    from train_multi_gpu import build_pipeline, make_clips

    from tav_pipeline.backends.diffusers.latents import cache_latents
    from tav_pipeline.train.config import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="tav-overhead-"))
    pipe, params = build_pipeline(work / "pipeline", args.smoke)
    cfg = TrainConfig.from_dict(train_settings(pipe, args.smoke, 1, True))
    tav = make_clips(work / "clips", args.clips, size=cfg.height)
    cache_latents(tav, str(pipe), work / "latents", cfg)
    done: list[dict[str, Any]] = []
    for name in args.rows.split(","):
        done.append(run_row(name, args, pipe, tav, work / "latents", work / "rows"))
        if args.out:  # what is measured so far, in case a later row does not finish
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / ("train_overhead.smoke.json" if args.smoke else "train_overhead.json")).write_text(
                json.dumps(done, indent=1) + "\n"
            )
    failed = [r["row"] for r in done if "failed" in r]
    rows = [r for r in done if "failed" not in r]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    import accelerate
    import diffusers

    try:
        import deepspeed

        ds = deepspeed.__version__
    except ImportError:
        ds = "absent"
    header = (
        f"device: {device}; torch {torch.__version__}, diffusers {diffusers.__version__}, accelerate {accelerate.__version__}, "
        f"deepspeed {ds}, Python {platform.python_version()}; CogVideoX transformer of {params:,} parameters (random init), "
        f"{cfg.num_frames}x{cfg.height}x{cfg.width}, batch 1, mixed precision {cfg.mixed_precision}; "
        f"{args.steps} timed steps after {args.warmup} warm-up\n\ncommand: python benchmarks/train_overhead.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    text = render(rows, header) + (f"\n\nfailed rows: {', '.join(failed)}" if failed else "")
    sys.stdout.write(text + "\n")
    if args.out:
        stem = "train_overhead.smoke" if args.smoke else "train_overhead"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.md").write_text(text + "\n")
        (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
