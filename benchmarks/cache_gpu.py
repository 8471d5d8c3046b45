"""Clips per second of the rule ``cache_latents`` at the paper's shape against a bare encode loop, in
one call, and the cache's share of the training it serves.

    python benchmarks/cache_gpu.py --out benchmarks/      # one GPU, about 2 minutes
    python benchmarks/cache_gpu.py --smoke                # tiny shapes on the CPU, seconds

The pipeline folder holds the CogVideoX VAE at its 2B configuration and a T5 encoder at T5-XXL's
configuration (4.76 B parameters, stored in bf16), both randomly initialised (no download); the
transformer is a small stand-in with CogVideoX-2B's input widths (the cache reads only its
config). Clips: synthetic 10 s, 8 fps, 256 x 256 mp4s with a cut in the middle (as
``train_multi_gpu.py``), ``train.diffusers.windows_per_clip`` 33-frame windows each (config.yaml: 4).

* ``rule``: :func:`tav_pipeline.backends.diffusers.latents.cache_latents`, the rule's function: decode the
  windows, T5 once per prompt, the VAE per window, safetensors files and the index. Its encoder
  loading is timed apart (wrapped) and left out of clips/s.
* ``floor``: the same encoders on the same windows, already decoded and on the GPU: T5 on each
  prompt and the VAE on each window, nothing written.

The share of an epoch compares the one-off cache of the paper's 480 train clips with one epoch of
training over them at ``--step-seconds`` (default: the ``rule_auto`` row of
``train_overhead.json`` beside this file when present).
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

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from train_gpu import COGVIDEOX_2B_SCHEDULER, COGVIDEOX_VAE, T5_XXL, TINY_T5, TINY_TRANSFORMER, TINY_VAE  # noqa: E402

TRAIN_CLIPS = 480
"""The paper's train split (SPEC: 480 + 50 + 50)."""


def build_pipeline(out: Path, smoke: bool) -> Path:
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from tav_pipeline.tiny_cogvideox import tiny_vocab

    width = 32 if smoke else 4096
    seq = 32 if smoke else 226
    channels = 4 if smoke else 16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(**dict(TINY_TRANSFORMER, in_channels=channels, out_channels=channels,
                                                     text_embed_dim=width, max_text_seq_length=seq))
    vae = AutoencoderKLCogVideoX(**dict(TINY_VAE if smoke else COGVIDEOX_VAE, latent_channels=channels))
    torch.set_default_dtype(torch.bfloat16 if device == "cuda" else torch.float32)
    try:
        with torch.device(device):  # 4.76 B parameters: built on the GPU, in bf16
            t5 = T5EncoderModel(T5Config(**(TINY_T5 if smoke else T5_XXL))).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    tokenizer = T5Tokenizer(vocab=tiny_vocab(), extra_ids=0, model_max_length=seq)
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=t5, vae=vae, transformer=transformer,
                             scheduler=CogVideoXDDIMScheduler(**COGVIDEOX_2B_SCHEDULER))
    pipe.save_pretrained(str(out))
    return out


def default_step_seconds() -> float:
    path = HERE / "train_overhead.json"
    if path.is_file():
        rows = {r["row"]: r for r in json.loads(path.read_text())}
        if "rule_auto" in rows:
            return float(rows["rule_auto"]["seconds_per_step"])
    return 0.537  # issue 15's measurement of the rule's path (checkpointing on)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--windows", type=int, default=4, help="train.diffusers.windows_per_clip (config.yaml: 4)")
    ap.add_argument("--step-seconds", type=float, default=None, help="training s/step for the epoch share")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU")
    ap.add_argument("--out", type=Path, default=None, help="folder for cache_gpu[.smoke].{md,json}")
    args = ap.parse_args(argv)
    import logging

    import torch
    from train_multi_gpu import make_clips, settings

    from tav_pipeline.backends.diffusers.latents import (
        cache_latents,
        cache_starts,
        load_windows,
        max_sequence_length,
        plan_clips,
        train_items,
    )
    from tav_pipeline.train import families
    from tav_pipeline.train.config import TrainConfig

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cuda = torch.cuda.is_available()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    work = Path(tempfile.mkdtemp(prefix="tav-cache-"))
    t0 = time.time()
    pipe = build_pipeline(work / "pipeline", args.smoke)
    train = settings(pipe, args.smoke, 1)
    train["diffusers"]["windows_per_clip"] = args.windows
    if args.smoke:
        train["diffusers"]["encode_dtype"] = "float32"
    cfg = TrainConfig.from_dict(train)
    tav = make_clips(work / "clips", args.clips, size=cfg.height)
    setup_s = time.time() - t0

    loads: list[float] = []
    original = families.CogVideoX.load_encoders

    def timed_load(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        enc = original(self, *a, **k)
        sync()
        loads.append(time.perf_counter() - t)
        return enc

    families.CogVideoX.load_encoders = timed_load  # type: ignore[method-assign]
    t0 = time.perf_counter()
    cache_latents(tav, str(pipe), work / "latents", cfg)
    sync()
    rule_total = time.perf_counter() - t0
    rule_s = (rule_total - loads[0]) / args.clips

    # the floor: the same encoders and windows, decoded beforehand, on the device
    family = families.family_for(str(pipe))
    from tav_pipeline.devices import resolve_device

    enc = original(family, str(pipe), "main", torch.device(resolve_device(cfg.diffusers.device)),
                   families.DTYPES[cfg.diffusers.encode_dtype])
    plans, _ = plan_clips(train_items(json.loads(tav.read_text())), cfg)
    seq_len = max_sequence_length(cfg, family.transformer_cls().load_config(str(pipe), subfolder="transformer"))
    windows = [[w.unsqueeze(0).to(enc.device, enc.dtype) for w in load_windows(p, cache_starts(p, cfg), cfg.height, cfg.width)]
               for p in plans]
    family.encode_prompts(enc, [plans[0].prompt], seq_len)
    family.encode_video(enc, windows[0][0])  # warm-up
    sync()
    t0 = time.perf_counter()
    for plan, ws in zip(plans, windows, strict=True):
        family.encode_prompts(enc, [plan.prompt], seq_len)
        for w in ws:
            family.encode_video(enc, w)
    sync()
    floor_s = (time.perf_counter() - t0) / len(plans)

    step_s = args.step_seconds or default_step_seconds()
    cache_all = TRAIN_CLIPS * rule_s + loads[0]
    epoch = TRAIN_CLIPS * step_s
    import diffusers

    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})"
    frames = cfg.num_frames
    lines = [
        f"device: {device}; torch {torch.__version__}, diffusers {diffusers.__version__}, Python {platform.python_version()}; "
        f"CogVideoX VAE ({'tiny' if args.smoke else '2B config'}) + T5 ({'tiny' if args.smoke else 'XXL config'}), random init, "
        f"{cfg.diffusers.encode_dtype}; {args.clips} clips x {args.windows} windows of {frames}x{cfg.height}x{cfg.width}; "
        f"setup {setup_s:.0f} s",
        "",
        "command: python benchmarks/cache_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "",
        "| row | s/clip | clips/s | vs floor |",
        "|---|---|---|---|",
        f"| rule (cache_latents, without its {loads[0]:.1f} s encoder load) | {rule_s:.3f} | {1 / rule_s:.2f} | {rule_s / floor_s:.2f}x |",
        f"| floor (T5 + VAE on decoded windows) | {floor_s:.3f} | {1 / floor_s:.2f} | 1.00x |",
        "",
        f"the paper's {TRAIN_CLIPS} train clips: cache {cache_all / 60:.1f} min once; one epoch at {step_s:.3f} s/step "
        f"{epoch / 60:.1f} min, so the cache is {100 * cache_all / epoch:.0f}% of one epoch and "
        f"{100 * cache_all / (epoch * 36):.1f}% of the paper's 36 epochs",
    ]
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    if args.out:
        stem = "cache_gpu.smoke" if args.smoke else "cache_gpu"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.md").write_text(text + "\n")
        (args.out / f"{stem}.json").write_text(json.dumps({"rule_s_per_clip": rule_s, "floor_s_per_clip": floor_s,
                                                            "encoder_load_s": loads[0], "step_s": step_s,
                                                            "cache_480_s": cache_all, "epoch_480_s": epoch}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
