"""Seconds per video of the rule ``generate_videos``'s own code path against a bare denoising loop of
the same transformer, scheduler and VAE, in one call; videos/hour and the projected time of the
paper's generations.

    python benchmarks/generate_gpu.py --out benchmarks/     # one GPU, about 2 minutes
    python benchmarks/generate_gpu.py --smoke               # tiny shapes on the CPU, seconds

The pipeline folder holds a randomly initialised CogVideoX-2B-size transformer (1.69 B parameters,
no download), the CogVideoX VAE at its 2B configuration, CogVideoX-2B's DDIM scheduler, and a
one-layer T5 stand-in with T5-XXL's output width (4096, 226 tokens: prompt encoding is a few ms of
a 2 s video either way, and both rows use the same encoder). 33 frames x 256 x 256 (9 x 32 x 32
latents), 50 steps, classifier-free guidance 6.0 (conditional and unconditional in one batch), bf16.

Rows:

* ``rule bN``: :func:`tav_pipeline.generate.load_pipeline` once, then
  :func:`tav_pipeline.generate.generate_group` (``generate.diffusers.batch_size: N``) over the
  prompts: the diffusers pipeline call, uint8 frames and the mp4 file of every video.
* ``floor bN``: a plain loop over the same modules: encode the prompts, draw each video's noise
  from its own seeded CPU generator, 50 x (transformer on [uncond, cond], guidance, scheduler
  step), VAE decode, uint8 frames on the host. No mp4.

Per-video seconds are the wall time of a row over its prompts divided by their number (one
warm-up call first). The largest pixel difference between the rule's b1 and bN videos is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from train_gpu import (  # noqa: E402
    COGVIDEOX_2B_SCHEDULER,
    COGVIDEOX_2B_TRANSFORMER,
    COGVIDEOX_VAE,
    TINY_TRANSFORMER,
    TINY_VAE,
)

PROMPTS_PER_GROUP = 50
"""The test split's 50 videos give 50 prompts per group (SPEC, Evaluation)."""


def build_pipeline(out: Path, smoke: bool) -> tuple[Path, int]:
    """A CogVideoX pipeline folder at CogVideoX-2B's transformer and VAE size (tiny under ``smoke``)."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from tav_pipeline.tiny_cogvideox import tiny_vocab

    config = TINY_TRANSFORMER if smoke else COGVIDEOX_2B_TRANSFORMER
    vae_config = dict(TINY_VAE if smoke else COGVIDEOX_VAE, latent_channels=config["in_channels"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vocab = tiny_vocab()
    torch.manual_seed(0)
    with torch.device(device):
        transformer = CogVideoXTransformer3DModel(**config)
        vae = AutoencoderKLCogVideoX(**vae_config)
        text_encoder = T5EncoderModel(
            T5Config(vocab_size=len(vocab), d_model=config["text_embed_dim"], d_kv=8, d_ff=64, num_layers=1,
                     num_heads=2, feed_forward_proj="gated-gelu", dropout_rate=0.0)
        ).eval()
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=config["max_text_seq_length"])
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=CogVideoXDDIMScheduler(**COGVIDEOX_2B_SCHEDULER))
    pipe.save_pretrained(str(out))
    return out, sum(p.numel() for p in transformer.parameters())


def make_run(pipe: Path, smoke: bool, steps: int, batch: int) -> Any:
    """The rule's DiffusersRun, built as ``generate_videos`` builds it (from ``train:`` and ``generate:``)."""
    from tav_pipeline.backends.diffusers.generate import DiffusersRun
    from tav_pipeline.train.config import GenerateConfig, TrainConfig

    train: dict[str, Any] = {"backend": "diffusers", "model": "bench", "epochs": [1],
                             "diffusers": {"pretrained": str(pipe), "hub_id": ""}}
    if smoke:
        train.update(num_frames=9, min_frames=5, height=32, width=32)
    gen = GenerateConfig.from_dict({"seed": 42, "diffusers": {"num_inference_steps": steps, "batch_size": batch}})
    return DiffusersRun.for_checkpoint(TrainConfig.from_dict(train), gen, "baseline", str(pipe))


def floor_videos(pipe: Any, prompts: list[str], run: Any, batch: int) -> tuple[list[np.ndarray], float]:
    """The bare loop; returns the videos and the seconds spent in VAE decoding."""
    import torch

    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    transformer, scheduler, vae = pipe.transformer, pipe.scheduler, pipe.vae
    cfg = transformer.config
    frames = (run.num_frames - 1) // pipe.vae_scale_factor_temporal + 1
    shape = (1, frames, cfg.in_channels, run.height // pipe.vae_scale_factor_spatial, run.width // pipe.vae_scale_factor_spatial)
    videos, decode_s = [], 0.0
    for first in range(0, len(prompts), batch):
        chunk = prompts[first : first + batch]
        n = len(chunk)
        with torch.no_grad():
            cond, uncond = pipe.encode_prompt(prompt=chunk, negative_prompt=[""] * n, do_classifier_free_guidance=True,
                                              max_sequence_length=cfg.max_text_seq_length, device=device, dtype=dtype)
            text = torch.cat([uncond, cond])
            # drawn as the pipeline draws them (diffusers' randn_tensor): on the CPU, in the model's dtype
            latents = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(run.seed + first + k),
                                             dtype=dtype) for k in range(n)]).to(device) * scheduler.init_noise_sigma
            scheduler.set_timesteps(run.num_inference_steps, device=device)
            for t in scheduler.timesteps:
                x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
                out = transformer(hidden_states=x, encoder_hidden_states=text, timestep=t.expand(2 * n),
                                  return_dict=False)[0].float()
                u, c = out.chunk(2)
                latents = scheduler.step(u + run.guidance_scale * (c - u), t, latents, return_dict=False)[0].to(dtype)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            video = vae.decode(latents.permute(0, 2, 1, 3, 4) / vae.config.scaling_factor).sample
            video = ((video.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu()
            decode_s += time.perf_counter() - t0
        videos += [v.numpy() for v in video]
    return videos, decode_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4, help="the batched rows' prompts per call")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU")
    ap.add_argument("--out", type=Path, default=None, help="folder for generate_gpu[.smoke].{md,json}")
    args = ap.parse_args(argv)
    import logging

    import torch

    import tav_pipeline.video
    from tav_pipeline.backends.diffusers.generate import generate_group, load_pipeline

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="tav-generate-"))
    t0 = time.time()
    pipe_dir, params = build_pipeline(work / "pipeline", args.smoke)
    build_s = time.time() - t0
    cuda = torch.cuda.is_available()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    written: dict[str, np.ndarray] = {}
    encode = tav_pipeline.video.encode_frames

    def keep(frames: list[np.ndarray], path: Path, **kw: Any) -> None:
        written[str(path)] = np.stack(frames)
        encode(frames, path, **kw)

    tav_pipeline.video.encode_frames = keep  # the rule's mp4s are still written; the frames are kept to compare
    prompts = [f"Previous scene: scene {i} of a beach; Next scene: scene {i} of a boat at sunset" for i in range(args.prompts)]
    t0 = time.time()
    pipe = load_pipeline(make_run(pipe_dir, args.smoke, args.steps, 1))
    sync()
    load_s = time.time() - t0
    generate_group(pipe, prompts[:1], work / "warm", make_run(pipe_dir, args.smoke, args.steps, 1))  # warm-up
    rows, videos = [], {}
    for batch in sorted({1, args.batch}):
        run = make_run(pipe_dir, args.smoke, args.steps, batch)
        sync()
        t0 = time.perf_counter()
        paths = generate_group(pipe, prompts, work / f"rule_b{batch}", run)
        sync()
        rule_s = (time.perf_counter() - t0) / len(prompts)
        videos[batch] = [written[str(p)] for p in paths]
        t0 = time.perf_counter()
        floor, decode_s = floor_videos(pipe, prompts, run, batch)
        sync()
        floor_s = (time.perf_counter() - t0) / len(prompts)
        rows.append({"batch": batch, "rule_s_per_video": rule_s, "floor_s_per_video": floor_s,
                     "floor_decode_s_per_video": decode_s / len(prompts), "ratio": rule_s / floor_s,
                     "rule_vs_floor_max_pixel_diff": int(max(np.abs(a.astype(int) - b.astype(int)).max()
                                                            for a, b in zip(videos[batch], floor, strict=True)))})
    diff = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(videos[1], videos[max(videos)], strict=True)]
    same = {"max_pixel_diff": int(max(d.max() for d in diff)), "equal_share": float(np.mean([np.mean(d == 0) for d in diff]))}

    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    epochs = len(config["train"]["epochs"])
    groups = len(config["generate"]["groups"])
    table2 = (1 + epochs) * groups * PROMPTS_PER_GROUP
    best = min(r["rule_s_per_video"] for r in rows)
    import diffusers

    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})"
    lines = [
        f"device: {device}; torch {torch.__version__}, diffusers {diffusers.__version__}, Python {platform.python_version()}; "
        f"CogVideoX transformer of {params:,} parameters + CogVideoX VAE (random init), {pipe.transformer.dtype}, "
        f"{make_run(pipe_dir, args.smoke, args.steps, 1).num_frames} frames "
        f"{'32x32' if args.smoke else '256x256'}, {args.steps} steps, CFG 6.0; {args.prompts} prompts per row; "
        f"pipeline built in {build_s:.0f} s, loaded by load_pipeline in {load_s:.1f} s",
        "",
        "command: python benchmarks/generate_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "",
        "| prompts per call | rule s/video | floor s/video | rule / floor | floor's VAE decode s/video | max pixel diff rule vs floor |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['rule_s_per_video']:.3f} | {r['floor_s_per_video']:.3f} | {r['ratio']:.2f}x | "
                     f"{r['floor_decode_s_per_video']:.3f} | {r['rule_vs_floor_max_pixel_diff']} |")
    lines += [
        "",
        f"rule b1 vs b{max(videos)}, same seeds: largest pixel difference {same['max_pixel_diff']}, "
        f"{100 * same['equal_share']:.2f}% of pixels equal",
        "",
        f"throughput (best row): {3600 / best:.0f} videos/hour. Table 2 (baseline + {epochs} checkpoints x {groups} groups x "
        f"{PROMPTS_PER_GROUP} prompts = {table2} videos at this shape): {table2 * best / 60:.1f} min "
        f"(+ {load_s:.0f} s pipeline load per checkpoint). Table 1's post-trained-family row is Table 2's baseline group C; "
        f"its other models ({', '.join(config['generate'].get('baselines', {}))}) run at their own sizes "
        "(49 frames at 480x720 / 512x512) and are not measured here.",
    ]
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    if args.out:
        stem = "generate_gpu.smoke" if args.smoke else "generate_gpu"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.md").write_text(text + "\n")
        (args.out / f"{stem}.json").write_text(json.dumps({"rows": rows, "batching": same, "load_s": load_s,
                                                            "table2_videos": table2}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
