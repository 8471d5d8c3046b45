"""Everything that decodes video or calls ffmpeg.

Decoding goes through PyAV (libav* in-process, one pass, frame threading); encoding goes through
the ffmpeg binary with an argv list built by ffmpeg-python (never a shell string, so file names with
spaces or quotes are safe). Frames are numbered in decode order from the start of the file, the
same way everywhere: the detectors' frame numbers, the clip cutter's window and the validator's
frames all come from :func:`iter_frames`'s counting, never from timestamps (which some containers
get wrong: an AVI with packed B-frames shifts every presentation time by one frame). Every failure
is raised as :class:`BadVideoError` with a reason tag for the rejects table.

Threads: every function that decodes or encodes takes ``threads`` (0: the library's default, all
cores; N: at most N threads), so a workflow job uses no more cores than its rule declares.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tav_pipeline.errors import BadVideoError, MissingAssetError

if TYPE_CHECKING:
    import av

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
    import av

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
    import av

    if container.start_time is not None:
        return float(container.start_time) / av.time_base
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header. Raises :class:`BadVideoError` for a missing, unreadable or
    video-less file; it does not decode, so a file whose header lies is caught later."""
    import av

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
    threads: int = 0,
) -> Iterator[Frame]:
    """Decode every frame of the first video stream once, in order.

    Arguments:
        path: video file.
        width: downscale so the frame is this wide (PySceneDetect's rule, see
            :func:`processing_size`); ``None`` keeps the decoded size.
        resize: see :data:`Resize`.
        interpolation: see :data:`Interpolation` (``decoder`` resizing only).
        pixel_format: layout of :attr:`Frame.image`.
        threads: decoder threads (0: libavcodec's default, one per core; 1: no threading).

    Raises:
        BadVideoError: ``missing_file``, ``unreadable``, ``no_video_stream``, or ``decode_error``
            when decoding fails before the first frame. Corruption after at least one good frame
            ends the iteration early with a warning, as players do.
    """
    import av
    import cv2

    container = _open(path)
    try:
        stream = _video_stream(container, path)
        _set_threads(stream, threads)
        offset = _start_offset(container, stream)
        # One reformatter per file keeps its SwsContext (filter tables, threads) between frames;
        # to_ndarray(width=...) builds a new one per frame, which costs more than the scaling.
        # threads=1: the decoder's frame threads already use the cores.
        reformatter = av.video.reformatter.VideoReformatter()
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


def _set_threads(stream: Any, threads: int) -> None:
    """Decode ``stream`` with ``threads`` threads (0: libavcodec's default, one per core)."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = int(threads)


def count_frames(path: str | Path, *, threads: int = 0) -> int:
    """Decode (without pixel conversion) and count the frames of the first video stream."""
    import av

    container = _open(path)
    try:
        stream = _video_stream(container, path)
        _set_threads(stream, threads)
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


def frames_at(
    path: str | Path, indices: Sequence[int], *, pixel_format: Literal["bgr24", "rgb24"] = "rgb24", threads: int = 0
) -> list[np.ndarray]:
    """The full-size frames at the given 0-based decode indices, decoding the file once."""
    wanted = sorted(set(int(i) for i in indices))
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return []
    for frame in iter_frames(path, pixel_format=pixel_format, threads=threads):
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


@dataclass(frozen=True)
class CutOutput:
    """What :func:`cut_clip` wrote."""

    argv: list[str]
    """The ffmpeg command that encoded the clip (its video comes from a pipe)."""
    first_time: float
    """Presentation time of the clip's first frame in the source (seconds from the file's start,
    as :attr:`Frame.time`); the audio is taken from there."""
    frames: int
    """Frames written (always the number asked for)."""


def _plane(frame: av.VideoFrame, k: int, width: int, height: int) -> bytes:
    """Plane ``k`` of a decoded frame without its line padding, cropped to ``width x height``."""
    plane = frame.planes[k]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return np.ascontiguousarray(rows[:height, :width]).tobytes()


def cut_clip(
    src: str | Path,
    dst: str | Path,
    *,
    start_frame: int,
    frames: int,
    fps: float,
    settings: EncodeSettings = EncodeSettings(),
    threads: int = 0,
) -> CutOutput:
    """Re-encode the decoded frames ``start_frame .. start_frame + frames - 1`` of ``src``.

    The frames are chosen by their decode index (the numbering of :func:`iter_frames`, which the
    detectors use), decoded here with PyAV and piped to ffmpeg unchanged (converted to 4:2:0 when
    the source is not, odd sizes cropped by one pixel at the right/bottom), so the clip holds exactly
    those frames, in order, none dropped or repeated, whatever the container's timestamps say. The
    clip runs at ``fps`` (constant; a variable-frame-rate source is re-timed). The audio, if any, is
    cut by time from the first frame's presentation time for ``frames / fps`` seconds.

    Arguments:
        src: source video.
        dst: the mp4 to write (parents are created).
        start_frame: decode index of the clip's first frame.
        frames: how many frames.
        fps: the clip's frame rate (the source's average rate).
        settings: encoder settings.
        threads: at most this many decoder threads and encoder threads (0: the libraries'
            defaults, one per core).

    Raises:
        BadVideoError: ``window_too_short`` (``frames <= 0``), ``decode_error`` (the source no
            longer decodes to the end of the window), ``encode_failed`` (ffmpeg's last lines).
    """
    import av
    import ffmpeg  # ffmpeg-python: builds the argv, we run it ourselves

    if frames <= 0:
        raise BadVideoError(src, "window_too_short", f"{frames} frames requested")
    if fps <= 0:
        raise BadVideoError(src, "window_too_short", "unknown frame rate")
    rate = Fraction(fps).limit_denominator(100000)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    container = _open(src)
    proc: subprocess.Popen[bytes] | None = None
    argv: list[str] = []
    written = 0
    first_time = 0.0
    err = tempfile.TemporaryFile()
    try:
        stream = _video_stream(container, src)
        _set_threads(stream, threads)
        offset = _start_offset(container, stream)
        has_audio = bool(container.streams.audio)
        reformatter = av.video.reformatter.VideoReformatter()
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index < start_frame:
                    continue
                if proc is None:
                    first_time = (float(frame.time) - offset) if frame.time is not None else index / fps
                    w, h = frame.width - frame.width % 2, frame.height - frame.height % 2
                    argv = _encode_argv(ffmpeg, src, dst, (w, h), rate, max(0.0, first_time), frames, has_audio, settings, threads)
                    log.debug("running %s", argv)
                    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
                    assert proc.stdin is not None
                yuv = frame if frame.format.name == "yuv420p" else reformatter.reformat(frame, format="yuv420p", threads=1)
                assert proc.stdin is not None
                proc.stdin.write(_plane(yuv, 0, w, h) + _plane(yuv, 1, w // 2, h // 2) + _plane(yuv, 2, w // 2, h // 2))
                written += 1
                if written == frames:
                    break
        except BrokenPipeError:
            pass  # ffmpeg stopped: its exit status and stderr say why
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("%s: decoding stopped after %d frames: %s", src, index, exc)
    finally:
        container.close()
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
    if proc is None:
        err.close()
        raise BadVideoError(src, "decode_error", f"the source decoded to {index + 1} frames; the clip starts at frame {start_frame}")
    code = proc.wait()
    err.seek(0)
    tail = " | ".join(err.read().decode(errors="replace").strip().splitlines()[-5:])
    err.close()
    if code != 0:
        Path(dst).unlink(missing_ok=True)
        raise BadVideoError(src, "encode_failed", tail[:400] or f"ffmpeg exited with status {code}")
    if written < frames:
        Path(dst).unlink(missing_ok=True)
        raise BadVideoError(
            src, "decode_error",
            f"the source decoded only to frame {start_frame + written - 1}; the clip needs frames {start_frame}-{start_frame + frames - 1}",
        )
    return CutOutput(argv=argv, first_time=first_time, frames=written)


def _encode_argv(
    ffmpeg: Any, src: str | Path, dst: str | Path, size: tuple[int, int], rate: Fraction, audio_from: float,
    frames: int, has_audio: bool, settings: EncodeSettings, threads: int,
) -> list[str]:
    """ffmpeg's argv for :func:`cut_clip`: raw 4:2:0 video on stdin, the audio from ``src``."""
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="yuv420p", s=f"{size[0]}x{size[1]}", framerate=str(rate))
    streams = [video.video]
    out_kwargs: dict[str, Any] = {
        "vcodec": settings.vcodec,
        "crf": settings.crf,
        "preset": settings.preset,
        "pix_fmt": settings.pix_fmt,
        "frames:v": frames,
        "threads": threads,
        "movflags": "+faststart",
        "map_metadata": -1,
    }
    if has_audio:
        audio = ffmpeg.input(str(src), ss=f"{audio_from:.6f}", t=f"{frames / float(rate):.6f}", threads=1)
        streams.append(audio.audio)
        out_kwargs["acodec"] = settings.acodec
    return list(
        ffmpeg.output(*streams, str(dst), **out_kwargs)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
        .compile(cmd=ffmpeg_binary())
    )


def encode_frames(
    frames: Sequence[np.ndarray] | Iterator[np.ndarray],
    dst: str | Path,
    *,
    fps: float,
    crf: int = 20,
    preset: str = "veryfast",
) -> None:
    """Write RGB uint8 frames to an H.264 mp4 with PyAV (used for generated and synthetic video)."""
    import av

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
