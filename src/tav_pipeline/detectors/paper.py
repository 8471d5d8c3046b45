"""The paper's scene-cut detector (section 3) and the ``cuts/{video}.json`` record.

Each frame is converted to HSV; for each channel ``D = mean |X_t - X_{t-1}|`` over all pixels; the
frame score is ``V_t = w_H*D_H + w_S*D_S + w_V*D_V``, divided by ``|w_H|+|w_S|+|w_V|`` under the
``weighted_mean`` normalisation (PySceneDetect's ``ContentDetector``; the paper's formula read
literally is ``weighted_sum``). A cut is declared at frame ``t`` when the score passes the threshold,
subject to a minimum scene length enforced like PySceneDetect's flash filter (``merge`` or
``suppress``). With weights (1, 1, 1), ``weighted_mean``, ``inclusive=True`` and ``resize="opencv"``
the scores are bit-identical to PySceneDetect 0.7's and the cuts are the same.

The detector is a small class with PySceneDetect's two-method shape (:meth:`process_frame`,
:meth:`post_process`); it never opens a file. :func:`detect_cuts` decodes once (downscaled early)
and feeds it. The beyond-the-paper detector lives in :mod:`tav_pipeline.transitions`.
"""

from __future__ import annotations

import json
import logging
import time as _time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from tav_pipeline.config import check_keys
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import Resize, iter_frames, probe, seconds

if TYPE_CHECKING:
    from tav_pipeline.transitions import RobustConfig

log = logging.getLogger(__name__)

Mode = Literal["paper", "robust"]
"""Detector modes: ``paper`` (this module, the paper's HSV threshold detector) or ``robust``
(:mod:`tav_pipeline.transitions`: cuts, dissolves and fades, flash- and pan-proof)."""
MODES: tuple[str, ...] = ("paper", "robust")

Normalisation = Literal["weighted_mean", "weighted_sum"]
FilterMode = Literal["merge", "suppress"]

SCORE_KEY = "content_val"
"""Name of the frame score in stats output (PySceneDetect's key)."""


class Components(NamedTuple):
    """Per-channel mean absolute differences between a frame and the previous one (0-255)."""

    hue: float
    """Mean |ΔH| (OpenCV's 8-bit hue, 0-179)."""
    saturation: float
    """Mean |ΔS|."""
    value: float
    """Mean |ΔV| (brightness)."""


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


class HsvCutDetector:
    """The paper's weighted-HSV frame-difference detector, one frame at a time."""

    def __init__(self, config: CutConfig = CutConfig()) -> None:
        self.config = config
        w = np.array(config.weights, dtype=np.float64)
        self._weights = w
        self._divisor = float(np.abs(w).sum()) if config.normalisation == "weighted_mean" else 1.0
        self._filter = MinSceneFilter(config.filter_mode, config.min_scene_len)
        self._previous: np.ndarray | None = None
        self.last_score: float | None = None
        self.last_components: Components | None = None
        self.last_above = False
        """Whether the last frame's score passed the threshold."""

    def score(self, hsv: np.ndarray) -> float | None:
        """Score of ``hsv`` (an 8-bit HSV frame) against the previous frame given to this method;
        ``None`` for the first frame."""
        previous, self._previous = self._previous, hsv
        if previous is None:
            return None
        if previous.shape != hsv.shape:
            raise ValueError(f"frame size changed from {previous.shape} to {hsv.shape}")
        # cv2.mean of the absolute difference gives the three channel means in one pass.
        means = cv2.mean(cv2.absdiff(hsv, previous))[:3]
        comps = Components(float(means[0]), float(means[1]), float(means[2]))
        self.last_components = comps
        return float(np.dot(self._weights, comps)) / self._divisor

    def process_frame(self, index: int, bgr: np.ndarray) -> list[int]:
        """Feed the next BGR frame (0-based ``index``, sequential); returns cut frames emitted now
        (each the first frame of a new scene)."""
        return self.process_hsv(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))

    def process_hsv(self, index: int, hsv: np.ndarray) -> list[int]:
        """:meth:`process_frame` for a frame already in 8-bit HSV (OpenCV's layout: H 0-179)."""
        score = self.score(hsv)
        self.last_score = score
        if score is None:
            above = False
        else:
            above = score >= self.config.threshold if self.config.inclusive else score > self.config.threshold
        self.last_above = above
        return self._filter(index, above)

    def post_process(self, last_index: int) -> list[int]:
        """Cuts still pending at the end of the video (none for this detector: a merge still open
        at the end is dropped, as in PySceneDetect)."""
        return []


@dataclass(frozen=True)
class Cut:
    """A detected transition: ``frame`` is the first frame of the new scene."""

    frame: int
    time: float
    """Presentation time of ``frame``, seconds from the start of the file."""
    score: float
    kind: str = "cut"
    """``cut`` for the paper's detector; the robust detector also reports ``dissolve``/``fade``."""
    length: int = 1
    """Frames the transition spans (1 for a hard cut)."""


@dataclass(frozen=True)
class Blank:
    """A black opening (``leader``) or closing (``tail``) of a video: frames ``start..end``
    (inclusive) that are black, plus the fade or cut out of (into) them. Not a scene transition:
    the robust detector records it here instead of in :attr:`CutResult.cuts`, and the clip cutter
    keeps clips out of it."""

    kind: str
    """``leader`` (from the first frame) or ``tail`` (to the last frame)."""
    start: int
    end: int
    time: float
    """Presentation time of ``start`` (seconds)."""

    @property
    def frames(self) -> int:
        return self.end - self.start + 1


@dataclass
class CutResult:
    """Contents of ``results/cuts/{video}.json``."""

    video: str
    path: str
    status: str
    """``ok`` or ``rejected``."""
    reason: str = ""
    detail: str = ""
    fps: float = 0.0
    frame_count: int = 0
    duration: float = 0.0
    width: int = 0
    height: int = 0
    cuts: list[Cut] = field(default_factory=list)
    detector: str = "paper"
    settings: dict[str, Any] = field(default_factory=dict)
    max_score: float = 0.0
    seconds: float = 0.0
    """Wall time of detection."""
    blanks: list[Blank] = field(default_factory=list)
    """Black leader and tail (robust mode; see :class:`Blank`)."""
    dropped: list[Cut] = field(default_factory=list)
    """Cuts the detector found and then dropped by rule before its first cut: the paper mode emits
    no cut until ``min_scene_len`` frames have passed since the start and since the previous
    above-threshold frame (PySceneDetect's rule). One entry per burst of above-threshold frames,
    at its highest score."""

    @property
    def first_cut(self) -> Cut | None:
        return self.cuts[0] if self.cuts else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["first_cut"] = asdict(self.cuts[0]) if self.cuts else None
        return d

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> CutResult:
        d = json.loads(Path(path).read_text())
        d.pop("first_cut", None)
        d["cuts"] = [Cut(**c) for c in d.get("cuts", [])]
        d["blanks"] = [Blank(**b) for b in d.get("blanks", [])]
        d["dropped"] = [Cut(**c) for c in d.get("dropped", [])]
        return cls(**d)

    @classmethod
    def rejected(cls, video: str, path: str | Path, error: BadVideoError, detector: str = "paper") -> CutResult:
        return cls(video=video, path=str(path), status="rejected", reason=error.reason, detail=error.detail, detector=detector)


def scan(
    frames: Iterable[tuple[int, float, np.ndarray]],
    config: CutConfig = CutConfig(),
    *,
    scores: list[float] | None = None,
    dropped: list[Cut] | None = None,
) -> tuple[list[Cut], int, float]:
    """Run the detector over ``(index, time, bgr)`` frames.

    Returns ``(cuts, frames_seen, max_score)``; when ``scores`` is a list, each frame's score
    (0.0 for the first) is appended to it; ``dropped`` gets the cuts the minimum scene length
    drops before the first cut is emitted (see :attr:`CutResult.dropped`).
    """
    detector = HsvCutDetector(config)
    times: dict[int, float] = {}
    frame_scores: dict[int, float] = {}
    cuts: list[Cut] = []
    n = 0
    max_score = 0.0
    last = -1
    for index, t, bgr in frames:
        emitted = detector.process_frame(index, bgr)
        s = detector.last_score or 0.0
        times[index] = t
        frame_scores[index] = s
        max_score = max(max_score, s)
        if scores is not None:
            scores.append(s)
        if dropped is not None and not cuts and not emitted and detector.last_above:
            if dropped and dropped[-1].frame >= index - 2:
                if s > dropped[-1].score:
                    dropped[-1] = Cut(frame=index, time=seconds(t), score=round(s, 6))
            else:
                dropped.append(Cut(frame=index, time=seconds(t), score=round(s, 6)))
        cuts.extend(Cut(frame=i, time=seconds(times[i]), score=round(frame_scores[i], 6)) for i in emitted)
        # keep only what the merge filter can still look back at
        horizon = index - max(config.min_scene_len, 1) - 1
        if horizon > 0 and horizon % 256 == 0:
            for old in [k for k in times if k < horizon]:
                times.pop(old, None)
                frame_scores.pop(old, None)
        n += 1
        last = index
    if n:
        for i in detector.post_process(last):
            cuts.append(Cut(frame=i, time=seconds(times[i]), score=round(frame_scores[i], 6)))
    return cuts, n, max_score


def detect_cuts(
    path: str | Path,
    config: CutConfig = CutConfig(),
    *,
    video: str | None = None,
    progress: bool = False,
    threads: int = 0,
) -> CutResult:
    """Detect cuts in one video with the paper's detector (``threads``: decoder threads, 0 for one
    per core).

    Raises :class:`BadVideoError` for unusable input (``missing_file``, ``unreadable``,
    ``no_video_stream``, ``decode_error``, ``zero_frames``, ``one_frame``).
    """
    started = _time.perf_counter()
    info = probe(path)
    bar = tqdm(total=info.frame_count or None, desc=f"cuts {Path(path).name}", unit="frame", disable=not progress, mininterval=1.0)

    def frames() -> Iterable[tuple[int, float, np.ndarray]]:
        for f in iter_frames(path, width=config.width or None, resize=config.resize, interpolation="point", threads=threads):
            bar.update(1)
            yield f.index, f.time, f.image

    dropped: list[Cut] = []
    try:
        cuts, n, max_score = scan(frames(), config, dropped=dropped)
    finally:
        bar.close()
    if n == 0:
        raise BadVideoError(path, "zero_frames", "no frame could be decoded")
    if n == 1:
        raise BadVideoError(path, "one_frame", "a single frame has no transitions")
    fps = info.fps
    return CutResult(
        video=video or Path(path).stem,
        path=str(path),
        status="ok",
        fps=fps,
        frame_count=n,
        duration=seconds(n / fps) if fps > 0 else info.duration,
        width=info.width,
        height=info.height,
        cuts=cuts,
        detector="paper",
        settings=settings_dict(config),
        max_score=round(max_score, 6),
        seconds=round(_time.perf_counter() - started, 3),
        dropped=dropped,
    )


def detect(
    path: str | Path,
    mode: str,
    paper: CutConfig = CutConfig(),
    robust: RobustConfig | None = None,
    *,
    video: str | None = None,
    progress: bool = False,
    threads: int = 0,
) -> CutResult:
    """Run the detector named by ``mode`` (see :data:`Mode`) on one video.

    ``paper`` calls :func:`detect_cuts` with ``paper``; ``robust`` calls
    :func:`tav_pipeline.transitions.detect_transitions` with ``robust`` (its defaults when
    ``None``). The robust module is imported only here, so the paper mode never needs torch.

    Raises:
        ConfigError: unknown ``mode``.
        BadVideoError: unusable input (see :func:`detect_cuts`).
    """
    if mode == "paper":
        return detect_cuts(path, paper, video=video, progress=progress, threads=threads)
    if mode == "robust":
        from tav_pipeline.transitions import RobustConfig, detect_transitions

        config = robust if robust is not None else RobustConfig()
        return detect_transitions(path, config, video=video, progress=progress, threads=threads)
    raise ConfigError("cuts.mode", f"unknown mode {mode!r}; expected one of {list(MODES)}")


def settings_dict(config: Any) -> dict[str, Any]:
    d = asdict(config)
    for k, v in list(d.items()):
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def with_overrides(config: CutConfig, **kwargs: Any) -> CutConfig:
    return replace(config, **kwargs)
