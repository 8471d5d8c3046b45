"""One keyframe per scene of a validated clip (paper section 3: BLIP captions "each of the two
scenes separately"; which frames it saw is not said, so it is a setting here).

:class:`KeyframeConfig`: scene 1 is the clip's frames ``[0, cut)``, scene 2 is ``[cut, end)``. One
frame per scene, ``position`` of the way into it, kept at least ``margin`` seconds away from the cut
(where encoders smear the two scenes together and detectors may be a frame off) and from the clip's
two ends. :func:`extract_keyframes` decodes the clip once and writes two PNGs and a small JSON record.
Runs in the light ``video`` environment (no torch).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

from tav_pipeline.config import check_keys
from tav_pipeline.errors import BadVideoError, ConfigError, TavError
from tav_pipeline.files import write_text_atomic
from tav_pipeline.records import read_json_object
from tav_pipeline.video import frames_at, seconds

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class KeyframeConfig:
    """Where in each scene the captioned frame is taken (``keyframes:`` in config.yaml)."""

    position: float = 0.5
    """Fraction of the way into the scene (0 = its first frame, 1 = its last). 0.5 takes the middle,
    the frame most likely to show the scene's subject and least likely to be a fade."""
    margin: float = 0.5
    """Seconds the keyframe is kept away from the cut and from the clip's start and end. When a scene
    is shorter than ``2 * margin`` no frame satisfies this and the scene's middle frame is used (the
    JSON record says ``"fallback": true``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.position <= 1.0:
            raise ConfigError("keyframes.position", f"must be within [0, 1], got {self.position}")
        if not self.margin >= 0.0:
            raise ConfigError("keyframes.margin", f"must be >= 0 seconds, got {self.margin}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyframeConfig:
        """Build from the ``keyframes:`` config mapping.

        Arguments:
            d: mapping with a subset of this class's fields.

        Returns:
            the config. Raises :class:`ConfigError` for unknown keys or values out of range.
        """
        check_keys("keyframes", d, cls)
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class Keyframe:
    """The frame chosen for one scene."""

    scene: int
    """1 (before the cut) or 2 (after it)."""
    frame: int
    """0-based decode index in the clip."""
    time: float
    """``frame / fps`` in seconds from the clip's start."""
    scene_start: int
    """First frame of the scene (inclusive)."""
    scene_end: int
    """Frame after the scene's last frame (exclusive)."""
    fallback: bool
    """True when the scene is too short for the margin and its middle frame was taken instead."""


def choose_keyframes(frames: int, fps: float, cut_frame: int, cfg: KeyframeConfig = KeyframeConfig()) -> tuple[Keyframe, Keyframe]:
    """Pick one frame in each scene of a two-scene clip.

    Frame ``i`` is shown at ``i / fps``. A scene ``[a, b)`` (frames) spans ``[a/fps, b/fps)``; its
    keyframe ``i`` must satisfy ``i/fps - a/fps >= margin`` and ``b/fps - i/fps >= margin``, i.e. it
    lies at least ``margin`` after the scene's start and before its end, where the ends are the clip's
    start, the cut and the clip's end. The target is ``a + position * (b - a)`` (rounded down), clamped
    into the allowed frames; when none are allowed the scene's middle frame ``a + (b - a - 1) // 2``
    is used and a warning is logged.

    Arguments:
        frames: number of frames in the clip.
        fps: the clip's frame rate.
        cut_frame: first frame of scene 2 (``cut_frame_in_clip`` of the clip sidecar).
        cfg: position and margin.

    Returns:
        the keyframes of scene 1 and scene 2.

    Raises:
        BadVideoError: ``scene_too_short`` when a scene has no frames (the cut is at the first frame
            or at/after the last one), ``unreadable`` when ``frames`` or ``fps`` is not positive.
    """
    if frames <= 0 or not fps > 0:
        raise BadVideoError("<clip>", "unreadable", f"frames={frames}, fps={fps}")
    bounds = ((1, 0, int(cut_frame)), (2, int(cut_frame), int(frames)))
    margin_frames = max(0, math.ceil(cfg.margin * fps - 1e-9))
    chosen: list[Keyframe] = []
    for scene, a, b in bounds:
        if b <= a or a < 0 or b > frames:
            raise BadVideoError(
                "<clip>", "scene_too_short", f"scene {scene} spans frames [{a}, {b}) of a {frames}-frame clip"
            )
        lo, hi = a + margin_frames, b - margin_frames
        if lo > hi or lo > b - 1:
            index = a + (b - a - 1) // 2
            fallback = True
            log.warning(
                "scene %d has %d frames (%.3f s), less than 2 x margin (%.3f s): using its middle frame %d",
                scene, b - a, (b - a) / fps, cfg.margin, index,
            )
        else:
            target = a + math.floor(cfg.position * (b - a))
            index = min(max(target, lo), min(hi, b - 1))
            fallback = False
        chosen.append(Keyframe(scene, index, seconds(index / fps), a, b, fallback))
    return chosen[0], chosen[1]


def extract_keyframes(
    clip_mp4: str | Path,
    sidecar: str | Path | Mapping[str, Any],
    cfg: KeyframeConfig,
    out_png_scene1: str | Path,
    out_png_scene2: str | Path,
    out_json: str | Path,
) -> dict[str, Any]:
    """Choose, decode and save one keyframe per scene of a clip.

    Arguments:
        clip_mp4: the two-scene clip.
        sidecar: its ``clips/{video}.json`` record (path or already-loaded mapping); ``frames``, ``fps``
            and ``cut_frame_in_clip`` are used.
        cfg: keyframe position and margin.
        out_png_scene1: PNG of scene 1's keyframe (full size, lossless).
        out_png_scene2: PNG of scene 2's keyframe.
        out_json: record of the choice, see Returns.

    Returns:
        the record written to ``out_json``: ``video``, ``status`` (``ok``), ``clip``, ``fps``, ``frames``,
        ``cut_frame_in_clip``, ``position``, ``margin``, ``scene1`` and ``scene2`` (each ``frame``,
        ``time``, ``scene_start``, ``scene_end``, ``fallback``, ``png``).

    Raises:
        BadVideoError: ``scene_too_short`` (see :func:`choose_keyframes`), the decoding reasons of
            :func:`tav_pipeline.video.frames_at`, or ``encode_failed`` when a PNG cannot be written.
        TavError: the sidecar lacks a needed key or its status is not ``ok``.
    """
    meta = read_json_object(sidecar)
    missing = [k for k in ("frames", "fps", "cut_frame_in_clip") if k not in meta]
    if missing:
        raise TavError(f"{sidecar if not isinstance(sidecar, Mapping) else clip_mp4}: sidecar lacks {missing}")
    if meta.get("status", "ok") != "ok":
        raise TavError(f"{clip_mp4}: sidecar status is {meta.get('status')!r}, not 'ok'")
    try:
        k1, k2 = choose_keyframes(int(meta["frames"]), float(meta["fps"]), int(meta["cut_frame_in_clip"]), cfg)
    except BadVideoError as exc:
        raise BadVideoError(clip_mp4, exc.reason, exc.detail) from None
    images = frames_at(clip_mp4, [k1.frame, k2.frame], pixel_format="bgr24")
    record: dict[str, Any] = {
        "video": meta.get("video", Path(clip_mp4).stem),
        "status": "ok",
        "clip": str(clip_mp4),
        "fps": float(meta["fps"]),
        "frames": int(meta["frames"]),
        "cut_frame_in_clip": int(meta["cut_frame_in_clip"]),
        "position": cfg.position,
        "margin": cfg.margin,
    }
    for key, image, out in (("scene1", images[0], out_png_scene1), ("scene2", images[1], out_png_scene2)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), image):
            raise BadVideoError(clip_mp4, "encode_failed", f"cannot write {out}")
        kf = k1 if key == "scene1" else k2
        record[key] = {**{k: v for k, v in asdict(kf).items() if k != "scene"}, "png": str(out)}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_json, json.dumps(record, indent=2) + "\n")
    log.info("%s: keyframes %d (%.3f s) and %d (%.3f s)", record["video"], k1.frame, k1.time, k2.frame, k2.time)
    return record
