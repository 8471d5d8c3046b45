"""STAND-IN FOR TESTS: not Open-Sora-Plan's sampler. Run as v1.3.1's is (``torchrun ... -m
opensora.sample.sample FLAGS`` from the checkout), it behaves as that sampler does where the
pipeline relies on it:

* the same flags (argparse; an unknown flag exits with status 2);
* it loads the transformer from ``--model_path`` (``config.json`` + weights), checks the VAE in
  ``--ae_path`` and finds ``--text_encoder_name_1`` in ``--cache_dir`` as ``from_pretrained``
  would offline;
* ``--text_prompt FILE.txt``: one prompt per line, stripped; with N processes, process ``r``
  makes the prompts ``i`` with ``i % N == r``;
* it writes ``{sample_method}_{i}_gs{guidance_scale}_s{num_sampling_steps}.mp4`` per prompt ``i``
  (``--num_frames`` frames of ``--height`` x ``--width`` at ``--fps``, H.264) and the grid video
  ``{sample_method}_gs{guidance_scale}_s{num_sampling_steps}.mp4`` into ``--save_img_path``.

A video is one or two scenes of flat colour with a moving square; the scene count (the cut at the
middle frame) and the colours follow from a hash of the transformer's weights, the seed, the
sampler settings and the prompt, so the same inputs give the same video and other weights give
another. The content means nothing.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from opensora import standin


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of v1.3.1's ``opensora/utils/sample_utils.py:get_args`` (names, types, defaults)."""
    p = argparse.ArgumentParser()
    add = p.add_argument
    add("--model_path", type=str, default="LanguageBind/Open-Sora-Plan-v1.0.0")
    add("--version", type=str, default="v1_3", choices=["v1_3", "v1_5"])
    add("--model_type", type=str, default="t2v", choices=["t2v", "inpaint", "i2v"])
    add("--num_frames", type=int, default=1)
    add("--height", type=int, default=512)
    add("--width", type=int, default=512)
    add("--device", type=str, default="cuda:0")
    add("--cache_dir", type=str, default="./cache_dir")
    add("--caption_refiner", type=str, default=None)
    add("--ae", type=str, default="CausalVAEModel_4x8x8")
    add("--ae_path", type=str, default="CausalVAEModel_4x8x8")
    add("--enhance_video", type=str, default=None)
    add("--text_encoder_name_1", type=str, default="DeepFloyd/t5-v1_1-xxl")
    add("--text_encoder_name_2", type=str, default=None)
    add("--save_img_path", type=str, default="./sample_videos/t2v")
    add("--guidance_scale", type=float, default=7.5)
    add("--sample_method", type=str, default="PNDM")
    add("--num_sampling_steps", type=int, default=50)
    add("--fps", type=int, default=24)
    add("--max_sequence_length", type=int, default=512)
    add("--text_prompt", nargs="+")
    add("--seed", type=int, default=42)
    add("--num_samples_per_prompt", type=int, default=1)
    add("--enable_tiling", action="store_true")
    add("--refine_caption", action="store_true")
    add("--compile", action="store_true")
    add("--save_memory", action="store_true")
    add("--prediction_type", type=str, default="epsilon")
    add("--rescale_betas_zero_snr", action="store_true")
    add("--local_rank", type=int, default=-1)
    add("--world_size", type=int, default=1)
    add("--sp", action="store_true")
    add("--v1_5_scheduler", action="store_true")
    add("--conditional_pixel_values_path", type=str, default=None)
    add("--mask_type", type=str, default=None)
    add("--crop_for_hw", action="store_true")
    add("--max_hxw", type=int, default=236544)
    return p.parse_args(argv)


def read_prompts(text_prompt: list[str]) -> list[str]:
    """``--text_prompt``: the prompts themselves, or one ``.txt`` file of them, one per line."""
    if len(text_prompt) == 1 and text_prompt[0].endswith("txt"):
        return [line.strip() for line in Path(text_prompt[0]).read_text().splitlines(keepends=True)]
    return list(text_prompt)


def render(key: bytes, frames: int, height: int, width: int) -> np.ndarray:
    """``frames x height x width x 3`` uint8: one or two flat-colour scenes with a moving square."""
    scenes = 1 + key[0] % 2
    hue = key[1] / 256.0
    side = max(4, min(height, width) // 8)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        scene = 0 if scenes == 1 or t < frames // 2 else 1
        rgb = colorsys.hsv_to_rgb((hue + 0.5 * scene) % 1.0, 0.8, 0.85)
        video[t] = np.array([round(c * 255) for c in rgb], np.uint8)
        x = (t * (width - side)) // max(1, frames - 1)
        y = (height - side) // 2
        video[t, y:y + side, x:x + side] = 235
    return video


def write_mp4(video: np.ndarray, path: Path, fps: int) -> None:
    """H.264 in yuv420p (what ``imageio.mimwrite(..., fps=fps)`` writes)."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for image in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def grid(videos: list[np.ndarray]) -> np.ndarray:
    """The videos side by side, ``ceil(sqrt(n))`` to a row."""
    per_row = math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / per_row)
    t, h, w, _ = videos[0].shape
    out = np.zeros((t, rows * h, per_row * w, 3), np.uint8)
    for i, v in enumerate(videos):
        r, c = divmod(i, per_row)
        out[:, r * h:(r + 1) * h, c * w:(c + 1) * w] = v
    return out


def main(args: argparse.Namespace) -> None:
    rank, world = standin.dist_env()
    if args.version != "v1_3":
        raise ImportError("No module named 'opensora.models.diffusion.opensora_v1_5'")
    if args.model_type != "t2v" or args.num_frames == 1 or args.num_samples_per_prompt != 1:
        raise NotImplementedError("the stand-in samples text-to-video, one sample per prompt, num_frames > 1")
    standin.check_vae(args.ae, args.ae_path)
    standin.text_encoder(args.text_encoder_name_1, args.cache_dir)
    config, tensors = standin.load_model(args.model_path)
    if config.get("_class_name") != "OpenSoraT2V_v1_3":
        raise ValueError(f"{args.model_path} holds a {config.get('_class_name')}, not an OpenSoraT2V_v1_3")
    weights = standin.weights_digest(tensors)
    os.makedirs(args.save_img_path, exist_ok=True)
    prompts = read_prompts(args.text_prompt)
    settings = (args.seed, args.sample_method, args.num_sampling_steps, args.guidance_scale, args.height, args.width)
    tag = f"gs{args.guidance_scale}_s{args.num_sampling_steps}"
    videos = []
    for index, prompt in enumerate(prompts):
        video = render(standin.digest(weights, *settings, prompt), args.num_frames, args.height, args.width)
        videos.append(video)
        if index % world == rank:
            write_mp4(video, Path(args.save_img_path, f"{args.sample_method}_{index}_{tag}.mp4"), args.fps)
    if rank == 0:
        write_mp4(grid(videos), Path(args.save_img_path, f"{args.sample_method}_{tag}.mp4"), args.fps)
        print(f"save path {args.save_img_path}", flush=True)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
