"""Seconds per step, peak GPU memory and the projected epoch time of the diffusers backend at the
paper's shape, with and without cached latents.

    python benchmarks/train_gpu.py                 # one GPU, ~5 minutes
    python benchmarks/train_gpu.py --smoke         # the same code on tiny shapes (CPU is fine)

What runs is the pipeline's own trainer step (:class:`tav_pipeline.backends.diffusers.loop.Trainer`: v target,
min-SNR-5 weights, AdamW 1e-5, EMA 0.9999, gradient checkpointing, bf16, DeepSpeed ZeRO-2 in one
process through accelerate) on a randomly initialised transformer of CogVideoX-2B's
configuration (no download), at 33 frames x 256 x 256 (9 x 32 x 32 latents, 2304 video tokens +
226 text tokens), batch size 1:

* ``cached``: the step reads VAE posterior parameters and T5 embeddings as the latent cache
  stores them (an epoch costs only the transformer);
* ``online``: every step also encodes the 33-frame clip with a CogVideoX VAE and the prompt
  with a T5-XXL encoder (both randomly initialised at their real sizes), as Open-Sora-Plan's
  trainer does. Decoding the mp4 is left out (it runs in dataloader workers, on the CPU).

Each mode runs in its own process (one accelerate/DeepSpeed state per process). The table gives
the mean of the timed steps after warm-up, the peak memory allocated, and 450 clips x s/step as
the projected epoch (the paper reports about 2 h per epoch on one H200 with Open-Sora-Plan); for
``cached`` also the one-off cost of caching 450 clips (T5 once + ``windows_per_clip`` VAE encodes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# THUDM/CogVideoX-2b, transformer/config.json, scheduler/scheduler_config.json and vae/config.json
COGVIDEOX_2B_TRANSFORMER = dict(
    num_attention_heads=30,
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    flip_sin_to_cos=True,
    freq_shift=0,
    time_embed_dim=512,
    text_embed_dim=4096,
    num_layers=30,
    dropout=0.0,
    attention_bias=True,
    sample_width=90,
    sample_height=60,
    sample_frames=49,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=226,
    activation_fn="gelu-approximate",
    timestep_activation_fn="silu",
    norm_elementwise_affine=True,
    norm_eps=1e-5,
    spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0,
    use_rotary_positional_embeddings=False,
)
COGVIDEOX_2B_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    rescale_betas_zero_snr=True,
    snr_shift_scale=3.0,
)
COGVIDEOX_VAE = dict(
    block_out_channels=(128, 256, 256, 512),
    latent_channels=16,
    layers_per_block=3,
    norm_num_groups=32,
    temporal_compression_ratio=4,
    sample_height=480,
    sample_width=720,
    scaling_factor=1.15258426,
)
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
)
TINY_TRANSFORMER = dict(
    COGVIDEOX_2B_TRANSFORMER,
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    time_embed_dim=16,
    text_embed_dim=32,
    num_layers=2,
    sample_width=4,
    sample_height=4,
    sample_frames=9,
    max_text_seq_length=32,
)
TINY_VAE = dict(
    block_out_channels=(8, 8, 8, 8),
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=4,
    temporal_compression_ratio=4,
    sample_height=32,
    sample_width=32,
)
TINY_T5 = dict(
    vocab_size=300,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_heads=4,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
)
PROMPT = "Previous scene: a man and a woman sitting at a table on the beach; Next scene: a small boat sailing on a calm sea at sunset"


def settings(smoke: bool) -> dict[str, Any]:
    train: dict[str, Any] = {
        "backend": "diffusers",
        "model": "bench",
        "epochs": [1],
    }  # paper: bf16, ZeRO-2, 33x256x256, batch 1
    if smoke:
        train.update(num_frames=9, min_frames=5, height=32, width=32, mixed_precision="no")
    return train


def worker(mode: str, steps: int, warmup: int, smoke: bool, windows: int) -> dict[str, Any]:
    """One mode in this process; returns its measurements."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, set_seed
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from tav_pipeline.backends.diffusers.families import CogVideoX, Encoders
    from tav_pipeline.backends.diffusers.loop import _skip_cpu_shm_kernel, prepare_trainer
    from tav_pipeline.tiny_cogvideox import tiny_vocab
    from tav_pipeline.train.accelerate_config import deepspeed_config, free_port
    from tav_pipeline.train.config import TrainConfig

    cfg = TrainConfig.from_dict(settings(smoke))
    cuda = torch.cuda.is_available()
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    if not cuda:
        os.environ["DS_ACCELERATOR"] = "cpu"
        _skip_cpu_shm_kernel()
    ds_json = Path(tempfile.mkdtemp()) / "deepspeed_zero2.json"
    ds_json.write_text(json.dumps(deepspeed_config(cfg)))
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=str(ds_json))
    )
    device = accelerator.device
    set_seed(0)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    with torch.device(device):
        transformer = CogVideoXTransformer3DModel(**(TINY_TRANSFORMER if smoke else COGVIDEOX_2B_TRANSFORMER))
    params = sum(p.numel() for p in transformer.parameters())
    scheduler = CogVideoXDDIMScheduler(**COGVIDEOX_2B_SCHEDULER)
    family = CogVideoX()
    trainer = prepare_trainer(cfg, accelerator, family, scheduler, transformer, total_steps=steps + warmup)
    latent_frames = (cfg.num_frames - 1) // 4 + 1
    h, w = cfg.height // 8, cfg.width // 8
    channels = 4 if smoke else 16
    seq_len = 32 if smoke else 226
    encoders = None
    encode_dtype = torch.bfloat16 if cuda else torch.float32
    if mode == "online":
        torch.set_default_dtype(encode_dtype)  # build the 4.7 B-parameter T5-XXL directly in bf16
        try:
            with torch.device(device):
                vae = AutoencoderKLCogVideoX(**(TINY_VAE if smoke else COGVIDEOX_VAE)).eval().requires_grad_(False)
                t5 = T5EncoderModel(T5Config(**(TINY_T5 if smoke else T5_XXL))).eval().requires_grad_(False)
        finally:
            torch.set_default_dtype(torch.float32)
        tokenizer = T5Tokenizer(vocab=tiny_vocab(), extra_ids=0, model_max_length=seq_len)
        pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=t5, vae=vae, transformer=None, scheduler=scheduler)
        encoders = Encoders(pipe, device, encode_dtype)
        family.vae_spatial = 8

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    times, encode_times = [], []
    video = torch.rand(1, 3, cfg.num_frames, cfg.height, cfg.width) * 2 - 1
    for i in range(warmup + steps):
        if i == warmup and cuda:
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        if encoders is None:
            moments = torch.randn(1, latent_frames, 2 * channels, h, w, device=device)
            embeds = torch.randn(1, seq_len, 32 if smoke else 4096, device=device)
        else:
            moments = family.encode_video(encoders, video)
            embeds = family.encode_prompts(encoders, [PROMPT], seq_len)
            sync()
            t_enc = time.perf_counter() - t0
        latents, noise, timesteps = trainer.draws(moments, [i], 1.15258426)
        loss, _ = trainer.step(latents, noise, timesteps, embeds)
        float(loss.detach())
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            if encoders is not None:
                encode_times.append(t_enc)
    out: dict[str, Any] = {
        "mode": mode,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "distributed": accelerator.distributed_type.name,
        "mixed_precision": accelerator.mixed_precision,
        "transformer_params": params,
        "shape": f"{cfg.num_frames}x{cfg.height}x{cfg.width} -> latents {latent_frames}x{channels}x{h}x{w}",
        "steps": steps,
        "seconds_per_step": sum(times) / len(times),
        "seconds_per_step_min": min(times),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "torch": torch.__version__,
    }
    if encode_times:
        # one-off cost of caching a clip: the prompt once + `windows` VAE windows; split the
        # measured encode time between them with one more timing of the VAE alone
        sync()
        t0 = time.perf_counter()
        family.encode_video(encoders, video)
        sync()
        vae_s = time.perf_counter() - t0
        out["encode_seconds"] = sum(encode_times) / len(encode_times)
        out["vae_seconds"] = vae_s
        out["t5_seconds"] = max(0.0, out["encode_seconds"] - vae_s)
    return out


def table(rows: list[dict[str, Any]], clips: int, windows: int) -> str:
    by = {r["mode"]: r for r in rows}
    lines = [
        f"device: {rows[0]['device']}, torch {rows[0]['torch']}, {rows[0]['distributed']} (ZeRO-2, 1 process), {rows[0]['mixed_precision']}, "
        f"CogVideoX-2B-size transformer ({rows[0]['transformer_params'] / 1e9:.2f} B parameters), {rows[0]['shape']}, batch 1",
        "",
        f"| mode | s/step (mean) | s/step (min) | peak GPU memory (GiB) | projected epoch of {clips} clips | vs cached |",
        "|---|---|---|---|---|---|",
    ]
    base = by.get("cached", rows[0])["seconds_per_step"]
    for r in rows:
        epoch = r["seconds_per_step"] * clips
        lines.append(
            f"| {r['mode']} | {r['seconds_per_step']:.3f} | {r['seconds_per_step_min']:.3f} | {r['peak_memory_gib']:.1f} | "
            f"{epoch / 60:.1f} min ({epoch / 3600:.2f} h) | {r['seconds_per_step'] / base:.2f}x |"
        )
    if "online" in by and "t5_seconds" in by["online"]:
        o = by["online"]
        once = clips * (o["t5_seconds"] + windows * o["vae_seconds"])
        lines += [
            "",
            f"online encode per step: {o['encode_seconds']:.3f} s (VAE {o['vae_seconds']:.3f} s, T5-XXL {o['t5_seconds']:.3f} s); "
            f"one-off cache of {clips} clips x {windows} windows: {once / 60:.1f} min",
        ]
    lines += ["", "paper (Open-Sora-Plan v1.3.1, one H200): about 2 h per epoch"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--modes", default="cached,online")
    ap.add_argument("--clips", type=int, default=450)
    ap.add_argument("--windows", type=int, default=4, help="train.diffusers.windows_per_clip")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes (runs on a CPU)")
    ap.add_argument("--out", type=Path, default=None, help="folder for train_gpu.json and train_gpu.md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.steps, args.warmup, args.smoke, args.windows)
        args.json.write_text(json.dumps(result))
        return 0
    rows = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                mode,
                "--json",
                str(out),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--windows",
                str(args.windows),
            ]
            if args.smoke:
                cmd.append("--smoke")
            proc = subprocess.run(cmd, check=False)
            if proc.returncode != 0 or not out.is_file():
                sys.stderr.write(f"mode {mode} failed ({proc.returncode})\n")
                return 1
            rows.append(json.loads(out.read_text()))
    text = table(rows, args.clips, args.windows)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_gpu.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "train_gpu.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
