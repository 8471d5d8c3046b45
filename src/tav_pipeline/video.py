"""Everything that decodes video or calls ffmpeg.

Decoding goes through PyAV (libav* in-process, one pass, frame threading); encoding and cutting go
through the ffmpeg binary with an argv list built by ffmpeg-python (never a shell string, so file
names with spaces or quotes are safe). Every failure is raised as :class:`BadVideoError` with a
reason tag for the rejects table.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from tav_pipeline.errors import BadVideoError, MissingAssetError

log = logging.getLogger(__name__)

Resize = Literal["decoder", "opencv"]
"""Where frames are downscaled: inside libswscale while converting from YUV (``decoder``, fast),
or with ``cv2.resize(INTER_LINEAR)`` on the full-size BGR frame (``opencv``, bit-identical to
PySceneDetect's own downscaling)."""

Interpolation = Literal["bilinear", "point", "area"]
"""libswscale's filter for ``resize="decoder"``: ``bilinear`` (smooth), ``point`` (nearest pixel,
fastest; at PySceneDetect's 2-3x downscale it tracks ``cv2.INTER_LINEAR``, which also reads only
the pixels next to each sample point), ``area``."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream."""

    path: str
    width: int
    height: int
    fps: float
    """Average frame rate (frames / second)."""
    frame_count: int
    """Frame count from the container; 0 when the container does not say (decode to count)."""
    duration: float
    """Seconds, from the stream or the container; 0.0 when neither says."""
    codec: str
    has_audio: bool
    variable_frame_rate: bool
    """True when the stream's guessed base rate and its average rate disagree."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based decode index, presentation time in seconds from the start of
    the file, and the pixels (``H x W x 3``, uint8)."""

    index: int
    time: float
    image: np.ndarray


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise BadVideoError(p, "missing_file", "no such file")
    if p.is_dir():
        raise BadVideoError(p, "unreadable", "is a directory")
    try:
        return av.open(str(p), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise BadVideoError(p, "unreadable", str(exc).strip()[:200]) from exc


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        container.close()
        raise BadVideoError(path, "no_video_stream", "the file has no video stream")
    return container.streams.video[0]


def _start_offset(container: av.container.InputContainer, stream: Any) -> float:
    """The time ffmpeg's ``-ss`` counts from: the container's start time (seconds)."""
    if container.start_time is not None:
        return float(container.start_time) / av.time_base
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header. Raises :class:`BadVideoError` for a missing, unreadable or
    video-less file; it does not decode, so a file whose header lies is caught later."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        avg = stream.average_rate
        base = stream.guessed_rate or stream.base_rate
        fps = float(avg) if avg else float(base) if base else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = float(container.duration) / av.time_base
        else:
            duration = 0.0
        frame_count = int(stream.frames or 0)
        if frame_count == 0 and duration > 0 and fps > 0:
            frame_count = 0  # unknown: the caller decodes to count
        vfr = bool(avg and base and abs(float(avg) - float(base)) > 0.01 * float(base))
        return VideoInfo(
            path=str(path),
            width=int(ctx.width),
            height=int(ctx.height),
            fps=fps,
            frame_count=frame_count,
            duration=duration,
            codec=str(ctx.name),
            has_audio=bool(container.streams.audio),
            variable_frame_rate=vfr,
        )
    finally:
        container.close()


def processing_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Frame size the detectors work at: PySceneDetect's auto-downscale rule (divide by
    ``width / target_width`` when the frame is at least ``target_width`` wide)."""
    if target_width <= 0 or width < target_width:
        return width, height
    factor = width / float(target_width)
    return max(1, round(width / factor)), max(1, round(height / factor))


def iter_frames(
    path: str | Path,
    *,
    width: int | None = None,
    resize: Resize = "decoder",
    interpolation: Interpolation = "bilinear",
    pixel_format: Literal["bgr24", "rgb24"] = "bgr24",
    threads: bool = True,
) -> Iterator[Frame]:
    """Decode every frame of the first video stream once, in order.

    Arguments:
        path: video file.
        width: downscale so the frame is this wide (PySceneDetect's rule, see
            :func:`processing_size`); ``None`` keeps the decoded size.
        resize: see :data:`Resize`.
        interpolation: see :data:`Interpolation` (``decoder`` resizing only).
        pixel_format: layout of :attr:`Frame.image`.
        threads: let libavcodec decode with frame threads.

    Raises:
        BadVideoError: ``missing_file``, ``unreadable``, ``no_video_stream``, or ``decode_error``
            when decoding fails before the first frame. Corruption after at least one good frame
            ends the iteration early with a warning, as players do.
    """
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        if threads:
            stream.thread_type = "AUTO"
        offset = _start_offset(container, stream)
        # One reformatter per file keeps its SwsContext (filter tables, threads) between frames;
        # to_ndarray(width=...) builds a new one per frame, which costs more than the scaling.
        # threads=1: the decoder's frame threads already use the cores.
        reformatter = VideoReformatter()
        flags = interpolation.upper()
        size: tuple[int, int] | None = None
        index = 0
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.width, frame.height) if width is None else processing_size(
                        frame.width, frame.height, width
                    )
                time = (float(frame.time) - offset) if frame.time is not None else index / float(
                    stream.average_rate or 25
                )
                image: np.ndarray
                if size == (frame.width, frame.height):
                    image = reformatter.reformat(frame, format=pixel_format, threads=1).to_ndarray()
                elif resize == "decoder":
                    image = reformatter.reformat(
                        frame, format=pixel_format, width=size[0], height=size[1], interpolation=flags, threads=1
                    ).to_ndarray()
                else:
                    full = reformatter.reformat(frame, format=pixel_format, threads=1).to_ndarray()
                    image = cv2.resize(full, size, interpolation=cv2.INTER_LINEAR)
                yield Frame(index=index, time=time, image=image)
                index += 1
        except (av.error.FFmpegError, ValueError) as exc:
            if index == 0:
                raise BadVideoError(path, "decode_error", str(exc).strip()[:200]) from exc
            log.warning("%s: decoding stopped after %d frames: %s", path, index, exc)
    finally:
        container.close()


def count_frames(path: str | Path) -> int:
    """Decode (without pixel conversion) and count the frames of the first video stream."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        n = 0
        try:
            for _ in container.decode(stream):
                n += 1
        except (av.error.FFmpegError, ValueError) as exc:
            if n == 0:
                raise BadVideoError(path, "decode_error", str(exc).strip()[:200]) from exc
        return n
    finally:
        container.close()


def frames_at(path: str | Path, indices: Sequence[int], *, pixel_format: Literal["bgr24", "rgb24"] = "rgb24") -> list[np.ndarray]:
    """The full-size frames at the given 0-based decode indices, decoding the file once."""
    wanted = sorted(set(int(i) for i in indices))
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return []
    for frame in iter_frames(path, pixel_format=pixel_format):
        if frame.index in wanted:
            found[frame.index] = frame.image
            if len(found) == len(wanted):
                break
    missing = [i for i in wanted if i not in found]
    if missing:
        raise BadVideoError(path, "decode_error", f"frames {missing} could not be decoded")
    return [found[int(i)] for i in indices]


def ffmpeg_binary() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MissingAssetError("ffmpeg", "setup", "install ffmpeg (apt-get install ffmpeg) or use the 'video' conda env")
    return exe


@dataclass(frozen=True)
class EncodeSettings:
    """How clips are re-encoded (the paper's appendix uses libx264 video and AAC audio)."""

    vcodec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    acodec: str = "aac"


def cut_clip(
    src: str | Path,
    dst: str | Path,
    *,
    start: float,
    frames: int,
    fps: float,
    settings: EncodeSettings = EncodeSettings(),
) -> list[str]:
    """Re-encode ``frames`` frames of ``src`` starting at the frame shown at ``start`` seconds.

    Seeking is frame-accurate (input ``-ss`` with decoding, then ``-frames:v``); the output keeps
    the input frame rate; odd frame sizes are cropped by one pixel to suit 4:2:0 chroma.
    Returns the argv that ran. Raises :class:`BadVideoError` (``encode_failed``) with ffmpeg's last
    lines when ffmpeg fails.
    """
    import ffmpeg  # ffmpeg-python: builds the argv, we run it ourselves

    if frames <= 0:
        raise BadVideoError(src, "window_too_short", f"{frames} frames requested")
    # Start a quarter frame early so float rounding can never skip the first wanted frame.
    ss = max(0.0, start - 0.25 / fps) if fps > 0 else max(0.0, start)
    duration = frames / fps if fps > 0 else None
    inp = ffmpeg.input(str(src), ss=f"{ss:.6f}")
    video = inp.video.filter("crop", "trunc(iw/2)*2", "trunc(ih/2)*2")
    streams = [video]
    info = probe(src)
    out_kwargs: dict[str, Any] = {
        "vcodec": settings.vcodec,
        "crf": settings.crf,
        "preset": settings.preset,
        "pix_fmt": settings.pix_fmt,
        "frames:v": frames,
        "r": str(Fraction(fps).limit_denominator(100000)) if fps > 0 else None,
        "movflags": "+faststart",
        "map_metadata": -1,
    }
    if info.has_audio:
        streams.append(inp.audio)
        out_kwargs["acodec"] = settings.acodec
        if duration is not None:
            out_kwargs["t"] = f"{duration:.6f}"
    out_kwargs = {k: v for k, v in out_kwargs.items() if v is not None}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    argv = (
        ffmpeg.output(*streams, str(dst), **out_kwargs)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0")
        .overwrite_output()
        .compile(cmd=ffmpeg_binary())
    )
    log.debug("running %s", argv)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        Path(dst).unlink(missing_ok=True)
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        raise BadVideoError(src, "encode_failed", tail[:400])
    return list(argv)


def encode_frames(
    frames: Sequence[np.ndarray] | Iterator[np.ndarray],
    dst: str | Path,
    *,
    fps: float,
    crf: int = 20,
    preset: str = "veryfast",
) -> None:
    """Write RGB uint8 frames to an H.264 mp4 with PyAV (used for generated and synthetic video)."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(100000)
    with av.open(str(dst), mode="w") as out:
        stream = None
        for image in frames:
            if stream is None:
                h, w = image.shape[:2]
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            img = np.ascontiguousarray(image[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        if stream is None:
            raise BadVideoError(dst, "zero_frames", "nothing to encode")
        for packet in stream.encode():
            out.mux(packet)


def seconds(value: float) -> float:
    """Round a time to microseconds for stable JSON output."""
    return float(round(value, 6)) if math.isfinite(value) else float("nan")
