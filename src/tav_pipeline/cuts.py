"""The ``cuts/{video}.json`` record: what every transition detector returns.

A leaf module (it imports only :mod:`tav_pipeline.errors`), so the
detectors in :mod:`tav_pipeline.detectors`, the clip cutter, validation and the metrics can all
import it without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tav_pipeline.errors import BadVideoError


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
    """The detector mode that made the record (``cuts.mode``)."""
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


def settings_dict(config: Any) -> dict[str, Any]:
    """A settings dataclass as plain JSON values (tuples become lists)."""
    d = asdict(config)
    for k, v in list(d.items()):
        if isinstance(v, tuple):
            d[k] = list(v)
    return d
