"""Shared inputs of the post-training tests: a tiny tav.json of lavfi clips with known cuts, its
latent cache, and the demo-sized training settings (the session fixtures ``tiny_model``,
``tav_json`` and ``latents`` in conftest.py build them once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _synthetic import render

FPS = 12.0
SCENES = [("pattern", "fractal"), ("sunset", "bars"), ("meadow", "pattern"), ("red", "blue"), ("bars", "meadow")]


def tiny_train(pretrained: str | Path, **over: Any) -> dict[str, Any]:
    """``train:`` for the tiny model: 9 frames at 32x32, fp32, no DeepSpeed, CPU."""
    d: dict[str, Any] = {
        "backend": "diffusers",
        "model": "tiny",
        "epochs": [1, 2],
        "num_frames": 9,
        "min_frames": 5,
        "height": 32,
        "width": 32,
        "mixed_precision": "no",
        "distributed": "plain",
        "diffusers": {
            "pretrained": str(pretrained),
            "hub_id": "",
            "device": "cpu",
            "encode_dtype": "float32",
            "dataloader_num_workers": 0,
            "windows_per_clip": 2,
        },
    }
    diffusers = over.pop("diffusers", {})
    d.update(over)
    d["diffusers"].update(diffusers)
    return d


def make_tav(folder: Path) -> Path:
    """Four 4 s train clips (cut at 2 s) and one test clip at 12 fps, 64x48."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, (a, b) in enumerate(SCENES):
        clip = render(folder / f"clip{i}.mp4", [(a, 2.0), (b, 2.0)], size=(64, 48), fps=FPS)
        items.append(
            {
                "video": f"v{i}",
                "clip": str(clip),
                "scene1": f"a {a}",
                "scene2": f"a {b}",
                "prompt": f"Previous scene: a {a}; Next scene: a {b}",
                "split": "train" if i < 4 else "test",
                "duration": 4.0,
                "fps": FPS,
                "frames": 48,
                "cut_time_in_clip": 2.0,
            }
        )
    tav = {
        "meta": {},
        "items": items,
        "test_prompts": {"A": ["A dog."], "B": ["A dog; a cat."], "C": ["Previous scene: a dog; Next scene: a cat"]},
    }
    path = folder / "tav.json"
    path.write_text(json.dumps(tav, indent=1))
    return path


def build_latents(model: Path, tav: Path, out: Path) -> Path:
    """The latent cache of ``tav`` for the tiny ``model`` at the :func:`tiny_train` settings."""
    import torch

    from tav_pipeline.backends.diffusers.latents import cache_latents
    from tav_pipeline.train.config import TrainConfig

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread start-up dominates (several times faster)
    try:
        cache_latents(tav, str(model), out, TrainConfig.from_dict(tiny_train(model)))
    finally:
        torch.set_num_threads(n)
    return out
