"""The clip cutter: 10 s around the FIRST real cut of a video (paper section 3).

The paper keeps only the first detected cut and cuts 5 s before and 5 s after it; when a side has
less than 5 s of footage it takes what exists (``paper`` policy, the clip is shorter). Two other
edge policies go beyond the paper: ``shift`` keeps the full length by sliding the window inside
the video, ``drop`` rejects the video. The appendix code instead treats the END of every detected
scene as a transition (which includes the end of the video itself); this module does not repeat
that: a clip is centred on a real cut, never on the end of the video.

Windows are planned in whole frames of the source, numbered in decode order like the detectors'
frames, and the clip holds exactly those decoded frames (:func:`tav_pipeline.video.cut_clip`: no
timestamp-based seeking, so containers with odd timestamps, such as AVI with packed B-frames, cut
right; the source frame rate is kept). A black leader or tail the robust detector recorded is kept
out of the window. Each clip gets a sidecar JSON with the source frames and times, the cut's frame
inside the clip and the policy that was applied. Cutting decodes the source from its start to the
end of the window (the first cut is usually early; detection decoded the whole file already).
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


def plan_window(
    cut: Cut, frame_count: int, fps: float, config: ClipConfig, *, path: str = "", usable: tuple[int, int] | None = None
) -> Window:
    """Frames to keep around ``cut`` in a video of ``frame_count`` frames at ``fps``.

    ``usable`` is the ``(first, end)`` frame range (``end`` exclusive) a clip may take frames from:
    the whole video by default, the frames between a black leader and tail when the detector
    recorded them (:func:`usable_span`).

    Raises :class:`BadVideoError` with reason ``window_too_short`` when the ``drop`` policy
    rejects the window or a side has less than ``min_side`` seconds.
    """
    if fps <= 0:
        raise BadVideoError(path, "window_too_short", "the container gives no frame rate")
    lo, hi = usable if usable is not None else (0, frame_count)
    total = int(round(config.length * fps))
    before = total // 2
    after = total - before
    c = cut.frame
    have_before, have_after = c - lo, hi - c
    if have_before < config.min_side * fps or have_after < config.min_side * fps:
        side = "before" if have_before < config.min_side * fps else "after"
        span = f"frames {lo}-{hi - 1} (between the black leader and tail)" if (lo, hi) != (0, frame_count) else f"{frame_count} frames"
        raise BadVideoError(
            path,
            "window_too_short",
            f"the first transition is at frame {c} ({c / fps:.2f} s) of {span}: only {(have_before if side == 'before' else have_after) / fps:.2f} s "
            f"{side} it, clips.min_side asks for {config.min_side} s on each side",
        )
    short_b = max(0, before - have_before)
    short_a = max(0, after - have_after)
    if config.edge_policy == "paper":
        start, end = c - min(before, have_before), c + min(after, have_after)
    elif config.edge_policy == "shift":
        length = min(total, hi - lo)
        start = min(max(lo, c - before), hi - length)
        end = start + length
    else:  # drop
        if short_b or short_a:
            raise BadVideoError(
                path,
                "window_too_short",
                f"clips.edge_policy 'drop': {have_before / fps:.2f} s before and {have_after / fps:.2f} s after the first "
                f"transition (frame {c}), {config.length / 2:.2f} s needed on each side",
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


def usable_span(result: CutResult) -> tuple[int, int]:
    """``(first, end)``: the frames of ``result``'s video outside its black leader and tail."""
    lo, hi = 0, result.frame_count
    for blank in result.blanks:
        if blank.kind == "leader":
            lo = max(lo, blank.end + 1)
        elif blank.kind == "tail":
            hi = min(hi, blank.start)
    return lo, max(lo, hi)


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
    start_frame: int = 0
    """Decode index of the clip's first frame in the source (clip frame ``k`` is source frame
    ``start_frame + k``)."""
    cut_frame: int = 0
    """Decode index of the cut frame in the source (``start_frame + cut_frame_in_clip``)."""

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
    """The first real cut of a detection result.

    Raises:
        BadVideoError: the detection's own reason when it was rejected; ``cut_too_early`` when the
            paper detector found cuts only inside its first ``min_scene_len`` frames and dropped
            them; ``no_cut`` otherwise (the detail says what was found: the largest score, a black
            leader or tail).
    """
    if result.status != "ok":
        raise BadVideoError(result.path, result.reason or "rejected", result.detail)
    if result.cuts:
        return result.cuts[0]
    if result.dropped:
        d = max(result.dropped, key=lambda c: c.score)
        length = result.settings.get("min_scene_len", "min_scene_len")
        raise BadVideoError(
            result.path,
            "cut_too_early",
            f"a cut at frame {d.frame} ({d.time:.2f} s, score {d.score:.1f}) was found and dropped: the paper's detector "
            f"(PySceneDetect's rule) emits no cut until cuts.min_scene_len = {length} frames have passed since the start "
            "and since the previous frame above the threshold; no later cut. cuts.mode: robust keeps cuts at the start",
        )
    blanks = ", ".join(f"a black {b.kind} (frames {b.start}-{b.end})" for b in result.blanks)
    if result.detector == "paper":
        threshold = result.settings.get("threshold", "")
        found = f"no frame-to-frame change reached the threshold {threshold} (largest score {result.max_score:.1f})"
    else:
        found = f"no cut, dissolve or fade (largest frame-to-frame score {result.max_score:.1f})"
    raise BadVideoError(result.path, "no_cut", found + (f"; only {blanks}, which is not a scene transition" if blanks else ""))


def extract_clip(result: CutResult, out_mp4: str | Path, config: ClipConfig = ClipConfig(), *, threads: int = 0) -> ClipRecord:
    """Cut and re-encode the clip around the first cut of ``result``; returns its sidecar record.

    The clip holds the source's decoded frames ``start_frame .. end_frame - 1`` (decode order, the
    detectors' numbering), so ``cut_frame_in_clip`` is where the cut is in the mp4, whatever the
    source container's timestamps say. ``start`` is the source presentation time of the clip's first
    frame, ``cut_time`` that of the cut frame, ``cut_time_in_clip`` the cut's time in the mp4
    (``cut_frame_in_clip / fps``). ``threads`` caps decoder and encoder threads (0: one per core).

    Raises :class:`BadVideoError` (``no_cut``, ``cut_too_early``, ``only_blank_ends``,
    ``window_too_short``, ``decode_error``, ``encode_failed``).
    """
    cut = first_cut(result)
    window = plan_window(cut, result.frame_count, result.fps, config, path=result.path, usable=usable_span(result))
    out = cut_clip(
        result.path, out_mp4, start_frame=window.start_frame, frames=window.frames, fps=window.fps,
        settings=config.encoder, threads=threads,
    )
    info = probe(out_mp4)
    if info.frame_count and info.frame_count != window.frames:
        raise BadVideoError(out_mp4, "encode_failed", f"the clip has {info.frame_count} frames, {window.frames} were written")
    duration = window.frames / window.fps
    return ClipRecord(
        video=result.video,
        source=result.path,
        clip=str(out_mp4),
        status="ok",
        start=seconds(out.first_time),
        end=seconds(out.first_time + duration),
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
        ffmpeg_argv=out.argv,
        start_frame=window.start_frame,
        cut_frame=window.cut_frame,
    )


def rejection(result: CutResult, config: ClipConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when no clip can be cut for ``result``; ``None`` otherwise."""
    try:
        plan_window(first_cut(result), result.frame_count, result.fps, config, path=result.path, usable=usable_span(result))
    except BadVideoError as exc:
        return exc.reason, exc.detail
    return None

