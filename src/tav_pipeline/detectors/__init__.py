"""Transition detectors: one interface, a registry keyed by ``cuts.mode``, and the drivers.

A detector has PySceneDetect's two-method shape: it is fed decoded frames one at a time
(:meth:`TransitionDetector.process_frame`) and asked at the end for what is still pending
(:meth:`TransitionDetector.post_process`); it never opens a file. :func:`scan` runs one over
frames in memory, :func:`detect` decodes a file (once, at the detector's processing size) and
returns the ``cuts/{video}.json`` record (:class:`~tav_pipeline.cuts.CutResult`).

Registry: every public module of this package is a detector, named by its ``cuts.mode`` value,
and defines ``DETECTOR``, its :class:`TransitionDetector` subclass. Shipped:

- ``paper`` (:mod:`.paper`): the paper's weighted-HSV threshold detector (section 3);
- ``robust`` (:mod:`.robust`): cuts, dissolves and fades, flash- and pan-proof (beyond the paper).

Adding a detector is one module here plus its config entry: the mode in the schema's ``cuts.mode``
enum and its settings under ``cuts.<mode>`` (see :meth:`TransitionDetector.section`).
"""

from __future__ import annotations

import importlib
import pkgutil
import time as _time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from tqdm import tqdm

from tav_pipeline.cuts import Blank, Cut, CutResult, settings_dict
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import Interpolation, Resize, iter_frames, probe, seconds


class DetectorSettings(Protocol):
    """A detector's typed settings: a frozen dataclass built from its config section."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Decoding:
    """How :func:`detect` decodes frames for a detector (see :func:`tav_pipeline.video.iter_frames`)."""

    width: int | None
    """Processing width; ``None`` keeps the decoded size."""
    resize: Resize = "decoder"
    interpolation: Interpolation = "bilinear"


class TransitionDetector(ABC):
    """Frames in, transitions out.

    Subclasses set :attr:`mode` (the registry key, ``cuts.mode``) and :attr:`settings_type`, take
    their settings in ``__init__``, and implement :meth:`process_frame` and :meth:`post_process`.
    """

    mode: ClassVar[str]
    settings_type: ClassVar[type[DetectorSettings]]

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.last_score: float = 0.0
        """The paper's HSV score of the last frame fed (0.0 for the first): every detector reports
        it, so scan statistics and ``max_score`` are comparable across modes."""
        self.blanks: list[Blank] = []
        """Black leader and tail, filled by :meth:`post_process` (detectors that find them)."""
        self.dropped: list[Cut] = []
        """Transitions found and then dropped by rule (see :attr:`CutResult.dropped`)."""

    @classmethod
    def section(cls, cuts: Mapping[str, Any]) -> dict[str, Any]:
        """This detector's settings out of the ``cuts:`` config section: ``cuts.<mode>``."""
        return dict(cuts.get(cls.mode) or {})

    @classmethod
    def from_cuts(cls, cuts: Mapping[str, Any]) -> TransitionDetector:
        """A fresh detector with its settings from the ``cuts:`` config section."""
        return cls(cls.settings_type.from_dict(cls.section(cuts)))

    @property
    @abstractmethod
    def decoding(self) -> Decoding:
        """How frames must be decoded for this detector."""

    @abstractmethod
    def process_frame(self, index: int, time: float, bgr: np.ndarray) -> list[Cut]:
        """Feed the next frame (0-based ``index``, sequential; ``time`` in seconds; 8-bit BGR at
        :attr:`decoding`'s size). Returns the transitions this frame completes (possibly earlier
        frames', possibly none until :meth:`post_process`)."""

    @abstractmethod
    def post_process(self) -> list[Cut]:
        """Transitions still pending after the last frame; fills :attr:`blanks` and
        :attr:`dropped` where the detector has them."""

    def record_settings(self) -> dict[str, Any]:
        """The settings as the cut record stores them (plus any run statistics)."""
        return settings_dict(self.settings)


def modes() -> list[str]:
    """The registered detector modes (the public modules of this package)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def detector_type(mode: str, *, key: str = "cuts.mode") -> type[TransitionDetector]:
    """The detector class registered as ``mode``. Raises :class:`ConfigError` (naming ``key``)
    for an unknown mode."""
    known = modes()
    if mode not in known:
        raise ConfigError(key, f"unknown detector mode {mode!r}; expected one of {known}")
    module = importlib.import_module(f"{__name__}.{mode}")
    cls: type[TransitionDetector] = module.DETECTOR
    return cls


def detector_from_cuts(cuts: Mapping[str, Any], mode: str | None = None) -> TransitionDetector:
    """A fresh detector for the ``cuts:`` config section: ``mode`` (default ``cuts.mode``, else
    ``paper``) with its settings from that section."""
    return detector_type(mode or str(cuts.get("mode") or "paper")).from_cuts(cuts)


@dataclass
class Scan:
    """What :func:`scan` saw."""

    cuts: list[Cut]
    frames: int
    max_score: float
    scores: list[float] = field(default_factory=list)
    """Every frame's paper HSV score (0.0 for the first), when asked for."""


def scan(frames: Iterable[tuple[int, float, np.ndarray]], detector: TransitionDetector, *, keep_scores: bool = False) -> Scan:
    """Run ``detector`` over ``(index, time, bgr)`` frames and collect its transitions in frame order."""
    cuts: list[Cut] = []
    scores: list[float] = []
    n = 0
    max_score = 0.0
    for index, t, bgr in frames:
        cuts.extend(detector.process_frame(index, t, bgr))
        max_score = max(max_score, detector.last_score)
        if keep_scores:
            scores.append(detector.last_score)
        n += 1
    if n:
        cuts.extend(detector.post_process())
    return Scan(cuts=sorted(cuts, key=lambda c: c.frame), frames=n, max_score=max_score, scores=scores)


def detect(
    path: str | Path,
    detector: TransitionDetector,
    *,
    video: str | None = None,
    progress: bool = False,
    threads: int = 0,
) -> CutResult:
    """Detect the transitions of one video file with ``detector`` (a fresh one per file).

    ``threads``: decoder threads (0: one per core).

    Raises:
        BadVideoError: unusable input (``missing_file``, ``unreadable``, ``no_video_stream``,
            ``decode_error``, ``zero_frames``, ``one_frame``).
    """
    started = _time.perf_counter()
    info = probe(path)
    how = detector.decoding
    bar = tqdm(total=info.frame_count or None, desc=f"{detector.mode} {Path(path).name}", unit="frame", disable=not progress, mininterval=1.0)

    def frames() -> Iterable[tuple[int, float, np.ndarray]]:
        for f in iter_frames(path, width=how.width, resize=how.resize, interpolation=how.interpolation, threads=threads):
            bar.update(1)
            yield f.index, f.time, f.image

    try:
        found = scan(frames(), detector)
    finally:
        bar.close()
    if found.frames == 0:
        raise BadVideoError(path, "zero_frames", "no frame could be decoded")
    if found.frames == 1:
        raise BadVideoError(path, "one_frame", "a single frame has no transitions")
    return CutResult(
        video=video or Path(path).stem,
        path=str(path),
        status="ok",
        fps=info.fps,
        frame_count=found.frames,
        duration=seconds(found.frames / info.fps) if info.fps > 0 else info.duration,
        width=info.width,
        height=info.height,
        cuts=found.cuts,
        detector=detector.mode,
        settings=detector.record_settings(),
        max_score=round(found.max_score, 6),
        seconds=round(_time.perf_counter() - started, 3),
        blanks=list(detector.blanks),
        dropped=list(detector.dropped),
    )
