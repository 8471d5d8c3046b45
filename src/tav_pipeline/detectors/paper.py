"""The paper's scene-cut detector (section 3) and the ``cuts/{video}.json`` record.

Each frame is converted to HSV; for each channel ``D = mean |X_t - X_{t-1}|`` over all pixels; the
frame score is ``V_t = w_H*D_H + w_S*D_S + w_V*D_V``, divided by ``|w_H|+|w_S|+|w_V|`` under the
``weighted_mean`` normalisation (PySceneDetect's ``ContentDetector``; the paper's formula read
literally is ``weighted_sum``). A cut is declared at frame ``t`` when the score passes the threshold,
subject to a minimum scene length enforced like PySceneDetect's flash filter (``merge`` or
``suppress``). With weights (1, 1, 1), ``weighted_mean``, ``inclusive=True`` and ``resize="opencv"``
the scores are bit-identical to PySceneDetect 0.7's and the cuts are the same.

The detector implements :class:`~tav_pipeline.detectors.TransitionDetector` (registered as
``paper``, the default ``cuts.mode``); its settings are the keys directly under ``cuts:``.
:func:`detect_cuts` decodes a file once (downscaled early) and feeds it. The beyond-the-paper
detector is :mod:`tav_pipeline.detectors.robust`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np

from tav_pipeline.config import check_keys
from tav_pipeline.cuts import Cut, CutResult
from tav_pipeline.detectors import Decoding, TransitionDetector, detect, modes
from tav_pipeline.errors import ConfigError
from tav_pipeline.video import Resize, seconds

log = logging.getLogger(__name__)

Normalisation = Literal["weighted_mean", "weighted_sum"]
FilterMode = Literal["merge", "suppress"]


class Components(NamedTuple):
    """Per-channel mean absolute differences between a frame and the previous one (0-255)."""

    hue: float
    """Mean |ΔH| (OpenCV's 8-bit hue, 0-179)."""
    saturation: float
    """Mean |ΔS|."""
    value: float
    """Mean |ΔV| (brightness)."""


def hsv_components(hsv: np.ndarray, previous: np.ndarray) -> Components:
    """Per-channel mean absolute difference between two 8-bit HSV frames of the same size."""
    # cv2.mean of the absolute difference gives the three channel means in one pass.
    means = cv2.mean(cv2.absdiff(hsv, previous))[:3]
    return Components(float(means[0]), float(means[1]), float(means[2]))


PYSCENEDETECT_WEIGHTS = (1.0, 1.0, 1.0)
"""ContentDetector's default weights (H, S, V): with ``weighted_mean`` this is its score."""


@dataclass(frozen=True)
class CutConfig:
    """Settings of the paper's detector (``cuts:`` in config.yaml)."""

    threshold: float = 27.0
    weights: tuple[float, float, float] = PYSCENEDETECT_WEIGHTS
    normalisation: Normalisation = "weighted_mean"
    inclusive: bool = True
    """``score >= threshold`` (PySceneDetect) when True; ``score > threshold`` (the paper's text)."""
    min_scene_len: int = 15
    """Frames; the minimum scene length (PySceneDetect's default 15)."""
    filter_mode: FilterMode = "merge"
    width: int = 256
    """Processing width (PySceneDetect's auto-downscale target); 0 keeps full resolution."""
    resize: Resize = "decoder"
    """``decoder``: libswscale downscales while converting from YUV, sampling the nearest pixel
    (fast; PySceneDetect's own cv2 bilinear downscale by 2-3x also reads only the pixels next to
    each sample point, so the cuts agree); ``opencv``: bit-identical to PySceneDetect."""

    def __post_init__(self) -> None:
        if len(self.weights) != 3:
            raise ConfigError("cuts.weights", "needs three values (hue, saturation, value)")
        if sum(abs(w) for w in self.weights) == 0:
            raise ConfigError("cuts.weights", "at least one weight must be non-zero")
        if self.normalisation not in ("weighted_mean", "weighted_sum"):
            raise ConfigError("cuts.normalisation", f"unknown value {self.normalisation!r}")
        if self.filter_mode not in ("merge", "suppress"):
            raise ConfigError("cuts.filter_mode", f"unknown value {self.filter_mode!r}")
        if self.min_scene_len < 0:
            raise ConfigError("cuts.min_scene_len", "must be >= 0")
        if self.resize not in ("decoder", "opencv"):
            raise ConfigError("cuts.resize", f"unknown value {self.resize!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CutConfig:
        check_keys("cuts", d, cls)
        d = dict(d)
        if "weights" in d:
            w = d["weights"]
            d["weights"] = (
                (float(w["hue"]), float(w["saturation"]), float(w["value"])) if isinstance(w, dict) else tuple(float(x) for x in w)
            )
        return cls(**d)


class MinSceneFilter:
    """Enforces the minimum scene length on a stream of above/below-threshold frames.

    ``suppress``: after a cut, further frames above the threshold are ignored until
    ``length`` frames have passed since the last emitted cut.
    ``merge``: a burst of above-threshold frames closer together than ``length`` is merged into a
    single cut, emitted at the burst's last above-threshold frame once the signal has stayed below
    the threshold for ``length`` frames. Merging is enabled only after the first cut. A cut closer
    than ``length`` frames to the start is dropped in both modes (PySceneDetect does the same).
    """

    def __init__(self, mode: FilterMode, length: int) -> None:
        self.mode = mode
        self.length = int(length)
        self._last_above: int | None = None
        self._merge_enabled = False
        self._merging = False
        self._merge_start = 0

    def __call__(self, index: int, above: bool) -> list[int]:
        if self.length <= 0:
            return [index] if above else []
        if self._last_above is None:
            self._last_above = index
        long_enough = index - self._last_above >= self.length
        if self.mode == "suppress":
            if above and long_enough:
                self._last_above = index
                return [index]
            return []
        if above:
            self._last_above = index
        if self._merging:
            if long_enough and not above and self._last_above - self._merge_start >= self.length:
                self._merging = False
                return [self._last_above]
            return []
        if not above:
            return []
        if long_enough:
            self._merge_enabled = True
            return [index]
        if self._merge_enabled:
            self._merging = True
            self._merge_start = index
        return []


class HsvCutDetector(TransitionDetector):
    """The paper's weighted-HSV frame-difference detector, one frame at a time."""

    mode = "paper"
    settings_type = CutConfig

    def __init__(self, config: CutConfig = CutConfig()) -> None:
        super().__init__(config)
        self.config = config
        w = np.array(config.weights, dtype=np.float64)
        self._weights = w
        self._divisor = float(np.abs(w).sum()) if config.normalisation == "weighted_mean" else 1.0
        self._filter = MinSceneFilter(config.filter_mode, config.min_scene_len)
        self._previous: np.ndarray | None = None
        self.last_components: Components | None = None
        self.last_above = False
        """Whether the last frame's score passed the threshold."""
        self._times: dict[int, float] = {}
        self._scores: dict[int, float] = {}
        self._emitted = False

    @classmethod
    def section(cls, cuts: Mapping[str, Any]) -> dict[str, Any]:
        """The paper's keys sit directly under ``cuts:`` (all but ``mode`` and the other detectors'
        sections)."""
        others = set(modes()) | {"mode"}
        return {k: v for k, v in cuts.items() if k not in others}

    @property
    def decoding(self) -> Decoding:
        return Decoding(width=self.config.width or None, resize=self.config.resize, interpolation="point")

    def score(self, hsv: np.ndarray) -> float | None:
        """Score of ``hsv`` (an 8-bit HSV frame) against the previous frame given to this method;
        ``None`` for the first frame."""
        previous, self._previous = self._previous, hsv
        if previous is None:
            return None
        if previous.shape != hsv.shape:
            raise ValueError(f"frame size changed from {previous.shape} to {hsv.shape}")
        comps = hsv_components(hsv, previous)
        self.last_components = comps
        return float(np.dot(self._weights, comps)) / self._divisor

    def process_frame(self, index: int, time: float, bgr: np.ndarray) -> list[Cut]:
        """Feed the next BGR frame; returns the cuts emitted now (each at the first frame of a new
        scene, possibly an earlier frame's under the ``merge`` filter)."""
        emitted = self.process_hsv(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))
        s = self.last_score
        self._times[index] = time
        self._scores[index] = s
        if not emitted and not self._emitted and self.last_above:
            self._note_dropped(index, time, s)
        cuts = [Cut(frame=i, time=seconds(self._times[i]), score=round(self._scores[i], 6)) for i in emitted]
        self._emitted = self._emitted or bool(cuts)
        # keep only what the merge filter can still look back at
        horizon = index - max(self.config.min_scene_len, 1) - 1
        if horizon > 0 and horizon % 256 == 0:
            for old in [k for k in self._times if k < horizon]:
                self._times.pop(old, None)
                self._scores.pop(old, None)
        return cuts

    def _note_dropped(self, index: int, time: float, score: float) -> None:
        """An above-threshold frame before the first cut that the minimum scene length held back:
        one :attr:`dropped` entry per burst, at its highest score."""
        if self.dropped and self.dropped[-1].frame >= index - 2:
            if score > self.dropped[-1].score:
                self.dropped[-1] = Cut(frame=index, time=seconds(time), score=round(score, 6))
        else:
            self.dropped.append(Cut(frame=index, time=seconds(time), score=round(score, 6)))

    def process_hsv(self, index: int, hsv: np.ndarray) -> list[int]:
        """The filter's verdict for a frame already in 8-bit HSV (OpenCV's layout: H 0-179): the
        cut frames emitted now."""
        score = self.score(hsv)
        self.last_score = score or 0.0
        if score is None:
            above = False
        else:
            above = score >= self.config.threshold if self.config.inclusive else score > self.config.threshold
        self.last_above = above
        return self._filter(index, above)

    def post_process(self) -> list[Cut]:
        """Cuts still pending at the end of the video (none for this detector: a merge still open
        at the end is dropped, as in PySceneDetect)."""
        return []


DETECTOR = HsvCutDetector


def detect_cuts(
    path: str | Path,
    config: CutConfig = CutConfig(),
    *,
    video: str | None = None,
    progress: bool = False,
    threads: int = 0,
) -> CutResult:
    """:func:`tav_pipeline.detectors.detect` with the paper's detector and ``config``.

    Raises :class:`~tav_pipeline.errors.BadVideoError` for unusable input (``missing_file``,
    ``unreadable``, ``no_video_stream``, ``decode_error``, ``zero_frames``, ``one_frame``).
    """
    return detect(path, HsvCutDetector(config), video=video, progress=progress, threads=threads)
