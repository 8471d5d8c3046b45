"""Clip validation: does a cut clip really contain a transition?

``paper`` (default, the appendix code): re-read the clip at full size in BGR and keep it when some
pair of consecutive frames has ``mean(absdiff(prev, frame)) > 50`` over all pixels and channels.
The largest value and where it occurred are always recorded, so the threshold can be judged
afterwards: real trailer cuts often score only 39-45 on this rule, and such clips are rejected
although they hold a clean cut.

``strict`` goes beyond the paper: re-run the configured cut detector (``cuts.mode``) on the clip
and require a transition within ``tolerance_frames`` of where the sidecar says the cut is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2

from tav_pipeline.clips import ClipRecord
from tav_pipeline.config import check_keys
from tav_pipeline.cuts import CutResult
from tav_pipeline.detectors import detect, detector_from_cuts
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import iter_frames

Mode = Literal["paper", "strict"]


@dataclass(frozen=True)
class ValidationConfig:
    """``validation:`` in config.yaml."""

    mode: Mode = "paper"
    threshold: float = 50.0
    """The appendix's constant, on mean BGR absolute difference (0-255)."""
    tolerance_frames: int = 2
    """``strict``: how far the re-detected cut may be from the sidecar's cut frame."""

    def __post_init__(self) -> None:
        if self.mode not in ("paper", "strict"):
            raise ConfigError("validation.mode", f"unknown value {self.mode!r}")
        if self.tolerance_frames < 0:
            raise ConfigError("validation.tolerance_frames", "must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationConfig:
        check_keys("validation", d, cls)
        return cls(**d)


@dataclass
class ValidationRecord:
    """Contents of ``results/validation/{video}.json``."""

    video: str
    clip: str
    mode: str
    passed: bool
    max_diff: float
    """Largest consecutive-frame mean BGR absdiff in the clip (the paper's statistic)."""
    max_diff_frame: int
    """Index of the later frame of that pair."""
    threshold: float
    paper_passed: bool
    redetected_frames: list[int] | None = None
    expected_frame: int | None = None
    reason: str = ""
    detail: str = ""

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> ValidationRecord:
        return cls(**json.loads(Path(path).read_text()))


def max_frame_difference(path: str | Path, *, threads: int = 0) -> tuple[float, int]:
    """The paper's statistic: ``max_t mean(absdiff(frame_t, frame_{t-1}))`` over BGR frames at full
    size, and the ``t`` where it occurs. Raises :class:`BadVideoError` for fewer than 2 frames."""
    best, where, previous, n = -1.0, -1, None, 0
    for frame in iter_frames(path, pixel_format="bgr24", threads=threads):
        if previous is not None:
            value = float(sum(cv2.mean(cv2.absdiff(previous, frame.image))[:3]) / 3.0)
            if value > best:
                best, where = value, frame.index
        previous = frame.image
        n += 1
    if n < 2:
        raise BadVideoError(path, "zero_frames" if n == 0 else "one_frame", "clip too short to validate")
    return best, where


CLIP_REJECTED = "clip_rejected"
"""Validation reason of a clip whose sidecar says ``rejected`` (the clip was never cut; the
rejects table reports the extract_clip reason instead)."""


def failed_validation(record: ClipRecord, config: ValidationConfig, reason: str, detail: str = "") -> ValidationRecord:
    """The record of a clip that failed before any statistic could be measured.

    Arguments:
        record: the clip's sidecar.
        config: validation settings (mode and threshold are recorded).
        reason: why, e.g. a :class:`BadVideoError` reason or :data:`CLIP_REJECTED`.
        detail: human-readable detail.

    Returns:
        A record with ``passed: false``.
    """
    return ValidationRecord(
        video=record.video, clip=record.clip, mode=config.mode, passed=False, max_diff=0.0,
        max_diff_frame=-1, threshold=config.threshold, paper_passed=False, reason=reason, detail=detail,
    )


def validate_clip(
    record: ClipRecord,
    config: ValidationConfig,
    cuts: Mapping[str, Any] | None = None,
    *,
    threads: int = 0,
) -> ValidationRecord:
    """Validate one clip. Never raises for a bad clip: a clip whose sidecar is not ``ok`` fails
    with :data:`CLIP_REJECTED`, one that cannot be decoded with the decoding reason.

    Arguments:
        record: the clip's sidecar.
        config: validation settings.
        cuts: the ``cuts:`` config section; ``strict`` re-runs its detector (``cuts.mode``, see
            :func:`tav_pipeline.detectors.detector_from_cuts`) with its settings. ``None``: the
            paper detector with its defaults.
        threads: decoder threads (0: one per core).
    """
    if record.status != "ok":
        return failed_validation(record, config, CLIP_REJECTED, f"{record.reason}: {record.detail}".strip(": "))
    try:
        best, where = max_frame_difference(record.clip, threads=threads)
    except BadVideoError as exc:
        return failed_validation(record, config, exc.reason, exc.detail)
    paper_ok = best > config.threshold
    out = ValidationRecord(
        video=record.video,
        clip=record.clip,
        mode=config.mode,
        passed=paper_ok,
        max_diff=round(best, 4),
        max_diff_frame=where,
        threshold=config.threshold,
        paper_passed=paper_ok,
        expected_frame=record.cut_frame_in_clip,
    )
    if config.mode == "strict":
        detector = detector_from_cuts(cuts or {})
        try:
            found: CutResult = detect(record.clip, detector, video=record.video, threads=threads)
        except BadVideoError as exc:
            return failed_validation(record, config, exc.reason, exc.detail)
        frames = [c.frame for c in found.cuts]
        out.redetected_frames = frames
        out.passed = any(abs(f - record.cut_frame_in_clip) <= config.tolerance_frames for f in frames)
        if not out.passed:
            out.reason = "cut_not_redetected"
            out.detail = (
                f"the {detector.mode} detector, re-run on the clip, finds transitions at clip frames {frames or 'none'}; "
                f"the sidecar puts the cut at frame {record.cut_frame_in_clip} (tolerance {config.tolerance_frames} frames)"
            )
    elif not paper_ok:
        out.reason = "below_threshold"
        out.detail = (
            f"the largest mean BGR change between consecutive frames is {best:.1f} (clip frame {where}); the paper's "
            f"rule needs more than {config.threshold} (validation.threshold); validation.mode: strict checks the cut itself"
        )
    return out
