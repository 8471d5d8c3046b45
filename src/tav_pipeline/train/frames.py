"""Open-Sora-Plan's frame arithmetic, which both backends train with: a clip is resampled from its
own frame rate to ``train.fps``, and a training window holds ``4k + 1`` frames (the video VAEs
compress time by 4), at most ``train.num_frames`` and at least ``train.min_frames``."""

from __future__ import annotations

import numpy as np


def resampled_indices(frames: int, fps: float, train_fps: float, sample_rate: int = 1) -> list[int]:
    """The clip frames that remain after resampling to ``train_fps`` (Open-Sora-Plan v1.3.1's
    rule: every ``fps / train_fps``-th frame, ``np.arange(0, frames, interval).astype(int)``, all
    of them when the rates are within 0.1), then every ``sample_rate``-th of those."""
    interval = 1.0 if abs(fps - train_fps) < 0.1 else fps / train_fps
    idx = np.arange(0, frames, interval).astype(int)
    idx = idx[idx < frames]
    return [int(i) for i in idx[::sample_rate]]


def window_length(available: int, num_frames: int, min_frames: int, stride_t: int = 4) -> int:
    """Frames of a training window from ``available`` resampled frames: the largest
    ``y <= min(available, num_frames)`` with ``(y - 1) % stride_t == 0`` (Open-Sora-Plan's
    ``find_closest_y``), or 0 when that is below ``min_frames``."""
    for y in range(min(available, num_frames), min_frames - 1, -1):
        if (y - 1) % stride_t == 0:
            return y
    return 0
