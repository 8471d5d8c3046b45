"""The demo's miniature world: a small visual grammar with the true caption of every scene.

A scene is a background colour, an object shape, an object colour and a motion. Its caption names the
first three (``"a white ball on a red background"``): the motion is not in the caption, since one
keyframe cannot show it. There are 4 x 3 x 2 = 24 captions; every pair of backgrounds differs by more
than 50 in mean BGR absolute difference, so a hard cut between two scenes of different backgrounds
passes the paper's validation, while the slow motion inside a scene stays far under every detector's
threshold.

Frames are drawn with numpy (RGB uint8), at any size: the demo's sources are 320x240, the tiny
models see 32x32 or 64x64. :func:`write_video` pipes them into ffmpeg (libx264).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tav_pipeline.errors import TavError
from tav_pipeline.video import ffmpeg_binary

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "blue": (40, 60, 210),
    "green": (40, 170, 60),
    "yellow": (230, 210, 50),
}
"""Background colours (RGB). The smallest pairwise mean absolute difference is 70 (red/yellow)."""

SHAPES = ("ball", "box", "triangle")
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {"white": (245, 245, 245), "black": (15, 15, 15)}
MOTIONS = ("left", "right", "up", "down")
"""Direction the object drifts in (not captioned)."""

WORDS = ("a", "on", "background", *BACKGROUNDS, *SHAPES, *OBJECT_COLOURS)
"""Every word a world caption uses."""

EXTRA_SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # dark and saturated, then dark grey: the HSV detector sees the saturation jump but the mean BGR
    # difference (~23) is under the paper's validation threshold of 50
    "ember": ((0x40, 0x08, 0x00), (0x30, 0x00, 0x20)),
    "ash": ((0x28, 0x28, 0x28), (0x20, 0x20, 0x20)),
}
"""Scenes outside the grammar (plain diagonal gradients, no object, no caption), for traps."""


@dataclass(frozen=True)
class Scene:
    """One scene of the world."""

    background: str
    shape: str
    colour: str
    motion: str = "right"

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.background, BACKGROUNDS, "background"),
            (self.shape, SHAPES, "shape"),
            (self.colour, OBJECT_COLOURS, "colour"),
            (self.motion, MOTIONS, "motion"),
        ):
            if value not in allowed:
                raise TavError(f"world scene: unknown {what} {value!r} (one of {', '.join(allowed)})")

    @property
    def caption(self) -> str:
        """The true caption, in the words a captioner can learn."""
        return f"a {self.colour} {self.shape} on a {self.background} background"


def all_scenes(motion: str = "right") -> list[Scene]:
    """Every captioned scene of the grammar (24), in a fixed order."""
    return [Scene(b, s, c, motion) for b in BACKGROUNDS for s in SHAPES for c in OBJECT_COLOURS]


def all_captions() -> list[str]:
    """The 24 distinct captions."""
    return [s.caption for s in all_scenes()]


def random_scene(rng: np.random.Generator, avoid_background: str | None = None) -> Scene:
    """A uniformly drawn scene, optionally with a background other than ``avoid_background``."""
    backgrounds = [b for b in BACKGROUNDS if b != avoid_background]
    return Scene(
        backgrounds[int(rng.integers(len(backgrounds)))],
        SHAPES[int(rng.integers(len(SHAPES)))],
        list(OBJECT_COLOURS)[int(rng.integers(len(OBJECT_COLOURS)))],
        MOTIONS[int(rng.integers(len(MOTIONS)))],
    )


@functools.lru_cache(maxsize=8)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy, xx


def _gradient(width: int, height: int, c0: Sequence[int], c1: Sequence[int]) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = ((xx / max(width - 1, 1)) + (yy / max(height - 1, 1)))[..., None] / 2.0
    out: np.ndarray = (np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t).round().astype(np.uint8)
    return out


def _object_mask(shape: str, width: int, height: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = (g + 0.5 for g in _grid(width, height))
    if shape == "ball":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "box":
        s = r * 0.95
        return (np.abs(xx - cx) <= s) & (np.abs(yy - cy) <= s)
    # triangle, apex up
    top, bottom = cy - r, cy + r * 0.8
    half = (yy - top) / (bottom - top) * r * 1.05
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def render_frame(scene: Scene | str, t: float, width: int, height: int) -> np.ndarray:
    """One frame of a scene at ``t`` in [0, 1] (its progress through the scene), RGB ``[H, W, 3]``.

    The background is the scene's colour with a faint vertical shading; the object (radius a quarter
    of the frame's height) drifts from one side of the centre to the other over the scene.
    """
    if isinstance(scene, str):
        if scene not in EXTRA_SCENES:
            raise TavError(f"world scene: unknown extra scene {scene!r} (one of {', '.join(EXTRA_SCENES)})")
        return _gradient(width, height, *EXTRA_SCENES[scene])
    base = np.asarray(BACKGROUNDS[scene.background], np.float32)
    shade = np.linspace(1.06, 0.94, height, dtype=np.float32)[:, None, None]
    frame = np.clip(base[None, None, :] * shade, 0, 255).repeat(width, axis=1)
    r = 0.25 * height
    drift = (t - 0.5) * 0.3
    dx, dy = {"left": (-drift, 0.0), "right": (drift, 0.0), "up": (0.0, -drift), "down": (0.0, drift)}[scene.motion]
    cx, cy = width * (0.5 + dx), height * (0.5 + dy)
    frame[_object_mask(scene.shape, width, height, cx, cy, r)] = OBJECT_COLOURS[scene.colour]
    out: np.ndarray = frame.round().astype(np.uint8)
    return out


def render_scenes(scenes: Sequence[tuple[Scene | str, float]], fps: float, width: int, height: int) -> Iterator[np.ndarray]:
    """The frames of scenes shown one after another with hard cuts (``(scene, seconds)`` each).

    Scene ``k`` starts at frame ``round(fps * sum of the durations before it)``, so the cut times are
    exact to a frame.
    """
    start = 0.0
    for scene, duration in scenes:
        first, last = round(start * fps), round((start + duration) * fps)
        n = max(last - first, 1)
        for i in range(n):
            yield render_frame(scene, i / max(n - 1, 1), width, height)
        start += duration


def write_video(frames: Iterator[np.ndarray] | Sequence[np.ndarray], out: str | Path, fps: float, *,
                filters: str = "", pix_fmt: str = "yuv420p", extra: Sequence[str] = (), crf: int = 20) -> Path:
    """Encode RGB frames with libx264 through ffmpeg's stdin (``filters``: an optional ``-vf`` graph)."""
    out = Path(out)
    it = iter(frames)
    first = next(it)
    height, width = first.shape[:2]
    argv = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "pipe:0"]
    if filters:
        argv += ["-vf", filters]
    argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", pix_fmt, *extra, str(out)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:  # ffmpeg may stop reading early (-frames:v): a broken pipe is then expected
        proc.stdin.write(np.ascontiguousarray(first).tobytes())
        for frame in it:
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise TavError(f"ffmpeg failed ({proc.returncode}) writing {out}: {err[-2000:]}")
    return out
