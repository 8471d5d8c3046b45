"""The diffusers backend on several GPUs: DeepSpeed ZeRO-2 in N processes against one, in one call.

    python benchmarks/train_multi_gpu.py                         # 1x1, 1x2, 2x1 on a 2-GPU node
    python benchmarks/train_multi_gpu.py --runs 1x1,1x2          # what one GPU can run
    python benchmarks/train_multi_gpu.py --smoke --runs 1x2,2x1  # tiny shapes on the CPU (gloo)

A run ``PxB`` is ``train.num_gpus: P`` processes with ``train.batch_size: B`` each (global batch
P*B), trained by the rule's own code path: :func:`tav_pipeline.backends.diffusers.loop.train_model_step`, i.e.
``accelerate launch`` of the trainer with the generated accelerate and ZeRO-2 files, on a latent
cache made by the rule ``cache_latents``'s function. Every run trains ``--steps`` optimizer steps
from the same weights on the same clips.

The model is randomly initialised at CogVideoX-2B's transformer configuration (1.69 B parameters;
no download) at the paper's shape (33 frames x 256 x 256, bf16, AdamW, EMA, gradient
checkpointing); its VAE and T5 encoder are small random stand-ins with the real output widths (16
latent channels, 4096-wide embeddings, 226 tokens), since only the transformer trains. The clips
are synthetic: 10 s at 8 fps, 256 x 256, a cut in the middle.

Because every sample's noise, timestep and posterior draw come from its own seed, ``2x1`` and
``1x2`` see the same global batches and must give the same loss curve (up to bf16 reduction
order); ``1x1`` takes half as many clips per step. The table gives, per run: seconds per step
(median of rank 0's per-step times after ``--warmup``), clips per second, the speed-up in clips/s
over ``1x1``, the peak memory allocated on each GPU (ZeRO-2 shards the fp32 master weights, the
Adam moments and the gradients across the processes), the job's wall time and the largest loss
difference from the other run of the same global batch.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_gpu import COGVIDEOX_2B_SCHEDULER, COGVIDEOX_2B_TRANSFORMER, TINY_TRANSFORMER  # noqa: E402


def build_pipeline(out: Path, smoke: bool, seed: int = 0) -> tuple[Path, int]:
    """A CogVideoX pipeline folder: the transformer at CogVideoX-2B's size (tiny under ``smoke``),
    small VAE and T5 stand-ins with the widths the transformer takes. Returns the folder and the
    transformer's parameter count."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from tav_pipeline.tiny_cogvideox import tiny_vocab

    config = TINY_TRANSFORMER if smoke else COGVIDEOX_2B_TRANSFORMER
    vocab = tiny_vocab()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            transformer = CogVideoXTransformer3DModel(**config)
        vae = AutoencoderKLCogVideoX(
            block_out_channels=(8, 8, 8, 8),
            latent_channels=config["in_channels"],
            layers_per_block=1,
            norm_num_groups=4,
            temporal_compression_ratio=4,
            sample_height=config["sample_height"] * 8,
            sample_width=config["sample_width"] * 8,
            scaling_factor=1.15258426,
        )
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=len(vocab),
                d_model=config["text_embed_dim"],
                d_kv=8,
                d_ff=64,
                num_layers=1,
                num_heads=2,
                feed_forward_proj="gated-gelu",
                dropout_rate=0.0,
            )
        ).eval()
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=config["max_text_seq_length"])
    scheduler = CogVideoXDDIMScheduler(**COGVIDEOX_2B_SCHEDULER)
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer.cpu(), scheduler=scheduler
    )
    pipe.save_pretrained(str(out))
    return out, sum(p.numel() for p in transformer.parameters())


def make_clips(folder: Path, count: int, size: int, fps: float = 8.0, seconds: float = 10.0) -> Path:
    """``count`` two-scene clips (a cut in the middle) and the ``tav.json`` naming them as train items."""
    from tav_pipeline.video import encode_frames

    folder.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * fps)
    yy, xx = np.mgrid[0:size, 0:size]
    items = []
    for i in range(count):
        rng = np.random.default_rng(i)
        colours = rng.integers(0, 256, size=(2, 3))

        def frame(t: int, colours: np.ndarray = colours) -> np.ndarray:
            scene = int(t >= frames // 2)
            wave = (np.sin((xx + 3 * t) / 9.0 + scene * (yy / 7.0)) + 1) / 2
            return (wave[..., None] * colours[scene]).astype(np.uint8)

        clip = folder / f"clip{i:03d}.mp4"
        encode_frames((frame(t) for t in range(frames)), clip, fps=fps)
        items.append(
            {
                "video": f"v{i:03d}",
                "clip": str(clip),
                "scene1": "a wave pattern",
                "scene2": "another wave pattern",
                "prompt": "Previous scene: a wave pattern; Next scene: another wave pattern",
                "split": "train",
                "duration": seconds,
                "fps": fps,
                "frames": frames,
                "cut_time_in_clip": seconds / 2,
            }
        )
    tav = {"meta": {}, "items": items, "test_prompts": {}}
    path = folder / "tav.json"
    path.write_text(json.dumps(tav, indent=1))
    return path


def settings(pipe: Path, smoke: bool, steps: int, processes: int = 1, batch: int = 1) -> dict[str, Any]:
    train: dict[str, Any] = {
        "backend": "diffusers",
        "model": "bench",
        "epochs": [1],
        "epoch_steps": steps,
        "num_gpus": processes,
        "batch_size": batch,
        "diffusers": {"pretrained": str(pipe), "hub_id": "", "windows_per_clip": 1},
    }
    if smoke:
        train.update(num_frames=9, min_frames=5, height=32, width=32, mixed_precision="no")
        train["diffusers"].update(device="cpu", encode_dtype="float32", dataloader_num_workers=0)
    return train


def run(spec: str, pipe: Path, tav: Path, latents: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One ``PxB`` training job through the rule's code path; its losses, times and memory."""
    from tav_pipeline.backends.diffusers.loop import train_model_step
    from tav_pipeline.train import checkpoint as ckpt

    processes, batch = (int(x) for x in spec.split("x"))
    folder = work / spec
    started = time.time()
    state = train_model_step(
        tav,
        latents,
        None,
        folder / "epoch_1",
        folder / "work",
        settings(pipe, args.smoke, args.steps, processes, batch),
        1,
        threads=args.threads,
        losses_tsv=folder / "losses.tsv",
    )
    wall = time.time() - started
    with (folder / "losses.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    per_step = [float(r["seconds"]) for r in rows[args.warmup :]] or [float(r["seconds"]) for r in rows]
    out = {
        "run": spec,
        "processes": processes,
        "batch_per_process": batch,
        "global_batch": processes * batch,
        "steps": state.global_step,
        "seconds_per_step": statistics.median(per_step),
        "losses": [float(r["loss"]) for r in rows],
        "peak_gpu_memory_gib": state.peak_gpu_memory_gib,
        "job_seconds": round(wall, 1),
        # zero_pp_rank_R_mp_rank_00_optim_states.pt (bf16_zero_pp_rank_... under bf16), one per process
        "optimizer_partitions": len(list((folder / "epoch_1" / "pytorch_model").glob("*zero_pp_rank_*_optim_states.pt"))),
        "learning_rate": state.learning_rate,
    }
    assert ckpt.is_complete(folder / "epoch_1")
    shutil.rmtree(folder / "epoch_1")  # a CogVideoX-2B-size state is ~30 GB with its optimizer
    return out


def table(rows: list[dict[str, Any]], device: str, params: int, shape: str) -> str:
    base = next((r for r in rows if r["run"] == "1x1"), rows[0])
    base_rate = base["global_batch"] / base["seconds_per_step"]
    lines = [
        f"device: {device}; CogVideoX transformer of {params:,} parameters (random init), {shape}; "
        f"DeepSpeed ZeRO-2 through accelerate launch; {rows[0]['steps']} steps per run",
        "",
        "| run (procs x batch) | global batch | s/step | clips/s | speed-up vs "
        f"{base['run']} | peak memory per GPU (GiB) | ZeRO partitions | job wall (s) | max abs loss diff vs same global batch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["global_batch"] / r["seconds_per_step"]
        twin = next((o for o in rows if o is not r and o["global_batch"] == r["global_batch"]), None)
        diff = (
            f"{max(abs(a - b) for a, b in zip(r['losses'], twin['losses'], strict=True)):.2e} ({twin['run']})"
            if twin
            else "-"
        )
        memory = ", ".join(f"{m:.1f}" for m in r["peak_gpu_memory_gib"]) or "n/a (CPU)"
        lines.append(
            f"| {r['run']} | {r['global_batch']} | {r['seconds_per_step']:.3f} | {rate:.2f} | {rate / base_rate:.2f}x | "
            f"{memory} | {r['optimizer_partitions']} | {r['job_seconds']:.0f} | {diff} |"
        )
    lines += ["", "loss per step:", "", "| step | " + " | ".join(r["run"] for r in rows) + " |"]
    lines.append("|---" * (len(rows) + 1) + "|")
    for i in range(max(len(r["losses"]) for r in rows)):
        cells = [f"{r['losses'][i]:.5f}" if i < len(r["losses"]) else "" for r in rows]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="1x1,1x2,2x1", help="comma-separated PROCESSESxBATCH")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of s/step")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--threads", type=int, default=8, help="CPU threads shared by a run's processes")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes (runs on a CPU)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None, help="folder for train_multi_gpu.json and .md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    import torch

    from tav_pipeline.backends.diffusers.latents import cache_latents
    from tav_pipeline.train.config import TrainConfig

    work = args.work or Path(tempfile.mkdtemp(prefix="tav-multi-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pipe, params = build_pipeline(work / "pipeline", args.smoke)
    cfg = TrainConfig.from_dict(settings(pipe, args.smoke, args.steps))
    tav = make_clips(work / "clips", args.clips, size=cfg.height)
    cache_latents(tav, str(pipe), work / "latents", cfg)
    sys.stderr.write(f"pipeline, {args.clips} clips and their latents ready in {time.time() - t0:.0f} s\n")
    rows = [run(spec, pipe, tav, work / "latents", work / "runs", args) for spec in args.runs.split(",")]
    device = (
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "CPU (gloo)"
    )
    shape = f"{cfg.num_frames}x{cfg.height}x{cfg.width}, mixed precision {cfg.mixed_precision}, cached latents"
    text = table(rows, f"{device}, torch {torch.__version__}", params, shape)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_multi_gpu.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "train_multi_gpu.md").write_text(text + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
