"""The clip cutter: 10 s around the FIRST real cut of a video (paper section 3).

The paper keeps only the first detected cut and cuts 5 s before and 5 s after it; when a side has
less than 5 s of footage it takes what exists (``paper`` policy, the clip is shorter). Two other
edge policies go beyond the paper: ``shift`` keeps the full length by sliding the window inside
the video, ``drop`` rejects the video. The appendix code instead treats the END of every detected
scene as a transition (which includes the end of the video itself); this module does not repeat
that: a clip is centred on a real cut, never on the end of the video.

Windows are planned in whole frames (frame-accurate re-encode, the source frame rate kept) and
each clip gets a sidecar JSON with the source times, the cut's frame inside the clip and the policy
that was applied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tav_pipeline.config import check_keys
from tav_pipeline.cuts import Cut, CutResult
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import EncodeSettings, cut_clip, probe, seconds

EdgePolicy = Literal["paper", "shift", "drop"]


@dataclass(frozen=True)
class ClipConfig:
    """``clips:`` in config.yaml."""

    length: float = 10.0
    """Seconds; the paper's 10 s (5 s before and 5 s after the cut)."""
    edge_policy: EdgePolicy = "paper"
    min_side: float = 0.5
    """Seconds each side of the cut must have at least, under any policy (a clip needs two scenes
    to caption)."""
    encoder: EncodeSettings = EncodeSettings()

    def __post_init__(self) -> None:
        if self.length <= 0:
            raise ConfigError("clips.length", "must be > 0")
        if self.edge_policy not in ("paper", "shift", "drop"):
            raise ConfigError("clips.edge_policy", f"unknown value {self.edge_policy!r}")
        if self.min_side < 0:
            raise ConfigError("clips.min_side", "must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipConfig:
        check_keys("clips", d, cls)
        d = dict(d)
        if isinstance(d.get("encoder"), dict):
            enc = d["encoder"]
            check_keys("clips.encoder", enc, EncodeSettings)
            d["encoder"] = EncodeSettings(**enc)
        return cls(**d)


@dataclass(frozen=True)
class Window:
    """A planned clip, in frames of the source (``end_frame`` exclusive)."""

    start_frame: int
    end_frame: int
    cut_frame: int
    fps: float
    policy: str
    shortfall_before: float
    """Seconds missing before the cut relative to half the clip length (0 when complete)."""
    shortfall_after: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def cut_frame_in_clip(self) -> int:
        return self.cut_frame - self.start_frame


def plan_window(cut: Cut, frame_count: int, fps: float, config: ClipConfig, *, path: str = "") -> Window:
    """Frames to keep around ``cut`` in a video of ``frame_count`` frames at ``fps``.

    Raises :class:`BadVideoError` with reason ``window_too_short`` when the ``drop`` policy
    rejects the window or a side has less than ``min_side`` seconds.
    """
    if fps <= 0:
        raise BadVideoError(path, "window_too_short", "unknown frame rate")
    total = int(round(config.length * fps))
    before = total // 2
    after = total - before
    c = cut.frame
    have_before, have_after = c, frame_count - c
    if have_before < config.min_side * fps or have_after < config.min_side * fps:
        raise BadVideoError(
            path, "window_too_short", f"cut at frame {c} of {frame_count}: a side is shorter than {config.min_side} s"
        )
    short_b = max(0, before - have_before)
    short_a = max(0, after - have_after)
    if config.edge_policy == "paper":
        start, end = c - min(before, have_before), c + min(after, have_after)
    elif config.edge_policy == "shift":
        length = min(total, frame_count)
        start = min(max(0, c - before), frame_count - length)
        end = start + length
    else:  # drop
        if short_b or short_a:
            raise BadVideoError(
                path,
                "window_too_short",
                f"drop policy: {have_before / fps:.2f} s before and {have_after / fps:.2f} s after the cut",
            )
        start, end = c - before, c + after
    return Window(
        start_frame=start,
        end_frame=end,
        cut_frame=c,
        fps=fps,
        policy=config.edge_policy,
        shortfall_before=seconds(short_b / fps),
        shortfall_after=seconds(short_a / fps),
    )


@dataclass
class ClipRecord:
    """Contents of the sidecar ``results/clips/{video}.json``.

    ``status`` is ``ok``, or ``rejected`` when no clip could be cut (``reason``/``detail`` say why;
    ``clip`` is then ``""`` and the numbers are 0). The sidecar, not the mp4, is the record of truth:
    the workflow leaves an empty placeholder at the mp4's path of a rejected clip.
    """

    video: str
    source: str
    clip: str
    status: str
    start: float
    end: float
    duration: float
    fps: float
    frames: int
    cut_time: float
    """Seconds into the source."""
    cut_time_in_clip: float
    cut_frame_in_clip: int
    cut_score: float
    cut_kind: str
    policy: str
    shortfall_before: float
    shortfall_after: float
    width: int = 0
    height: int = 0
    ffmpeg_argv: list[str] | None = None
    reason: str = ""
    detail: str = ""

    @classmethod
    def rejected(cls, video: str, source: str, error: BadVideoError) -> ClipRecord:
        """The record of a clip that could not be cut.

        Arguments:
            video: the video key.
            source: the source video.
            error: why; its ``reason`` and ``detail`` are kept.

        Returns:
            A record with ``status: rejected``.
        """
        return cls(
            video=video, source=source, clip="", status="rejected", start=0.0, end=0.0, duration=0.0, fps=0.0,
            frames=0, cut_time=0.0, cut_time_in_clip=0.0, cut_frame_in_clip=0, cut_score=0.0, cut_kind="",
            policy="", shortfall_before=0.0, shortfall_after=0.0, reason=error.reason, detail=error.detail,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> ClipRecord:
        return cls(**json.loads(Path(path).read_text()))


def first_cut(result: CutResult) -> Cut:
    """The first real cut of a detection result; :class:`BadVideoError` (``no_cut``) if none."""
    if result.status != "ok":
        raise BadVideoError(result.path, result.reason or "rejected", result.detail)
    if not result.cuts:
        raise BadVideoError(result.path, "no_cut", f"no transition found (max score {result.max_score:.1f})")
    return result.cuts[0]


def extract_clip(result: CutResult, out_mp4: str | Path, config: ClipConfig = ClipConfig()) -> ClipRecord:
    """Cut and re-encode the clip around the first cut of ``result``; returns its sidecar record.

    Raises :class:`BadVideoError` (``no_cut``, ``window_too_short``, ``encode_failed``).
    """
    cut = first_cut(result)
    window = plan_window(cut, result.frame_count, result.fps, config, path=result.path)
    # Cut times are PTS-based; the window's start is counted back from the cut in frames of the
    # average rate (exact for constant frame rate; for variable frame rate the clip is re-timed
    # to the average rate, and a window that starts at the first frame starts at 0 exactly).
    start = 0.0 if window.start_frame == 0 else max(0.0, cut.time - window.cut_frame_in_clip / window.fps)
    argv = cut_clip(result.path, out_mp4, start=start, frames=window.frames, fps=window.fps, settings=config.encoder)
    info = probe(out_mp4)
    duration = window.frames / window.fps
    return ClipRecord(
        video=result.video,
        source=result.path,
        clip=str(out_mp4),
        status="ok",
        start=seconds(start),
        end=seconds(start + duration),
        duration=seconds(duration),
        fps=window.fps,
        frames=window.frames,
        cut_time=cut.time,
        cut_time_in_clip=seconds(window.cut_frame_in_clip / window.fps),
        cut_frame_in_clip=window.cut_frame_in_clip,
        cut_score=cut.score,
        cut_kind=cut.kind,
        policy=window.policy,
        shortfall_before=window.shortfall_before,
        shortfall_after=window.shortfall_after,
        width=info.width,
        height=info.height,
        ffmpeg_argv=argv,
    )


def rejection(result: CutResult, config: ClipConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when no clip can be cut for ``result``; ``None`` otherwise."""
    try:
        plan_window(first_cut(result), result.frame_count, result.fps, config, path=result.path)
    except BadVideoError as exc:
        return exc.reason, exc.detail
    return None

