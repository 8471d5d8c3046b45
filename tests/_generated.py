"""Stand-in "generated videos" with known scene counts, laid out like the generation rules' output
(``{root}/{model}/{checkpoint}/{group}/{i}.mp4`` + ``prompts.json``). Tests only.

Each scene is a slowly drifting sinusoidal pattern in its own colour, so consecutive frames of a
scene differ little (HSV score well under 27) and a scene change is a hard cut (score far above).
Frames are numpy arrays encoded with :func:`tav_pipeline.video.encode_frames`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tav_pipeline.video import encode_frames

COLOURS = [(210, 70, 40), (40, 90, 210), (60, 190, 80), (230, 210, 60), (160, 60, 200)]


def scene_frame(scene: int, t: int, size: int = 128, moving: bool = True) -> np.ndarray:
    """Frame ``t`` of scene ``scene`` (RGB uint8, ``size`` x ``size``)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = 0.25 * t if moving else 0.0
    pattern = 0.65 + 0.35 * np.sin(x / (6.0 + scene) + phase) * np.cos(y / 9.0 - phase / 2)
    colour = np.array(COLOURS[scene % len(COLOURS)], np.float32)
    return np.clip(pattern[..., None] * colour, 0, 255).astype(np.uint8)


def video_frames(cuts: Sequence[int], frames: int = 33, size: int = 128, moving: bool = True) -> list[np.ndarray]:
    """``frames`` frames; a new scene starts at each frame in ``cuts``."""
    out = []
    scene = 0
    for t in range(frames):
        if t in cuts:
            scene += 1
        out.append(scene_frame(scene, t, size, moving))
    return out


def write_group(
    root: Path,
    model: str,
    checkpoint: str,
    group: str,
    videos: Sequence[Sequence[int]],
    *,
    prompts: Sequence[str] | None = None,
    frames: int = 33,
    size: int = 128,
    fps: float = 8,
    moving: bool | Sequence[bool] = True,
) -> Path:
    """Write one generated folder: video ``i`` has cuts ``videos[i]`` (and moves if ``moving``,
    or ``moving[i]``). Returns its prompts.json."""
    folder = root / model / checkpoint / group
    folder.mkdir(parents=True, exist_ok=True)
    texts = list(prompts) if prompts is not None else [f"prompt {i} of group {group}" for i in range(len(videos))]
    motion = [moving] * len(videos) if isinstance(moving, bool) else list(moving)
    for i, cuts in enumerate(videos):
        encode_frames(video_frames(cuts, frames, size, motion[i]), folder / f"{i}.mp4", fps=fps, crf=18)
    pj = folder / "prompts.json"
    pj.write_text(json.dumps({"group": group, "prompts": texts}))
    return pj
