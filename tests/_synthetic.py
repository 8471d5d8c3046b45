"""Small videos with known transitions, made with ffmpeg's lavfi sources (tests only).

Every builder runs one ffmpeg command (an argv list, never a shell string) and returns the frames
where the truth lies, so a test can compare a detector with it. Sources are deterministic, so the
same call always gives the same pixels; the files are encoded with libx264 (yuv420p) like the
pipeline's clips.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


@dataclass(frozen=True)
class Segment:
    """``frames`` frames of one lavfi source, e.g. ``Segment("testsrc2", 30)`` or
    ``Segment("color=c=red", 10)``. ``vf`` is an optional filter chain applied to this segment only
    (``n`` counts from 0 within the segment)."""

    source: str
    frames: int
    vf: str = ""


def _source(spec: str, size: tuple[int, int], fps: float) -> str:
    sep = ":" if "=" in spec else "="
    return f"{spec}{sep}size={size[0]}x{size[1]}:rate={fps}"


def run_ffmpeg(args: list[str]) -> None:
    """Run ffmpeg quietly; raise with its last lines if it fails."""
    argv = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")


def _encode_args(dst: Path, crf: int, pix_fmt: str = "yuv420p", preset: str = "veryfast") -> list[str]:
    return ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", pix_fmt, str(dst)]


def concat(
    dst: str | Path,
    segments: list[Segment],
    *,
    size: tuple[int, int] = (320, 180),
    fps: float = 25,
    crf: int = 18,
    pix_fmt: str = "yuv420p",
    preset: str = "veryfast",
    audio: bool = False,
) -> list[int]:
    """Hard cuts: the segments back to back (with a sine tone as AAC audio when ``audio``).
    Returns the cut frames (first frame of each new segment)."""
    dst = Path(dst)
    args: list[str] = []
    chains = []
    for i, seg in enumerate(segments):
        args += ["-f", "lavfi", "-i", _source(seg.source, size, fps)]
        extra = f",{seg.vf}" if seg.vf else ""
        # scale: a few sources round odd sizes to even ones
        chains.append(f"[{i}:v]trim=end_frame={seg.frames},setpts=PTS-STARTPTS,scale={size[0]}:{size[1]},setsar=1,format={pix_fmt}{extra}[v{i}]")
    joined = "".join(f"[v{i}]" for i in range(len(segments)))
    graph = ";".join(chains) + f";{joined}concat=n={len(segments)}:v=1:a=0[out]"
    total = sum(s.frames for s in segments)
    maps = ["-map", "[out]"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=300:duration={total / fps}"]
        maps += ["-map", f"{len(segments)}:a", "-c:a", "aac"]
    run_ffmpeg([*args, "-filter_complex", graph, *maps, "-frames:v", str(total), *_encode_args(dst, crf, pix_fmt, preset)])
    cuts, running = [], 0
    for seg in segments[:-1]:
        running += seg.frames
        cuts.append(running)
    return cuts


SOURCES = {
    "pattern": "testsrc2",
    "fractal": "mandelbrot",
    "bars": "smptehdbars",
    "sunset": "gradients=speed=0.05:c0=#d04010:c1=#2010a0",
    "meadow": "gradients=speed=0.05:c0=#10a030:c1=#e0e040",
    "red": "color=c=#c02020",
    "blue": "color=c=#2040c0",
}
"""Named scenes for :func:`render`: each looks unlike the others (a hard cut between any two)."""


def render(
    path: str | Path,
    scenes: Sequence[tuple[str, float]],
    *,
    size: tuple[int, int] = (160, 120),
    fps: float = 24,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
) -> Path:
    """:func:`concat` of named :data:`SOURCES` scenes given as ``(name, seconds)``: an H.264 mp4
    whose cut frames are known exactly (``round(seconds * fps)`` frames per scene)."""
    segments = [Segment(SOURCES[name], round(seconds * fps)) for name, seconds in scenes]
    concat(path, segments, size=size, fps=fps, pix_fmt=pix_fmt, preset="ultrafast", audio=audio)
    return Path(path)


def crossfade(
    dst: str | Path,
    first: Segment,
    second: Segment,
    *,
    length: int,
    transition: str = "fade",
    size: tuple[int, int] = (320, 180),
    fps: int = 25,
    crf: int = 18,
) -> tuple[int, int]:
    """A gradual transition with ffmpeg's ``xfade`` (``fade`` = dissolve, ``fadeblack`` = fade out to
    black and in again). Returns ``(start, length)``: frames ``start .. start+length-1`` are mixed."""
    dst = Path(dst)
    offset = first.frames - length
    graph = (
        f"[0:v]trim=end_frame={first.frames},setpts=PTS-STARTPTS,format=yuv420p[a];"
        f"[1:v]trim=end_frame={second.frames},setpts=PTS-STARTPTS,format=yuv420p[b];"
        f"[a][b]xfade=transition={transition}:duration={length / fps}:offset={offset / fps}[out]"
    )
    total = first.frames + second.frames - length
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", _source(first.source, size, fps),
            "-f", "lavfi", "-i", _source(second.source, size, fps),
            "-filter_complex", graph, "-map", "[out]", "-frames:v", str(total), *_encode_args(dst, crf),
        ]
    )
    return offset, length


def single(
    dst: str | Path,
    segment: Segment,
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 25,
    crf: int = 18,
) -> None:
    """One source with an optional filter chain (flashes, pans...), no transition by construction."""
    dst = Path(dst)
    extra = f",{segment.vf}" if segment.vf else ""
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", _source(segment.source, size, fps),
            "-vf", f"trim=end_frame={segment.frames},setpts=PTS-STARTPTS,format=yuv420p{extra}",
            "-frames:v", str(segment.frames), *_encode_args(dst, crf),
        ]
    )


def flash_filter(frames: list[int]) -> str:
    """A drawbox filter that turns the given frames (0-based) white: single-frame flashes."""
    cond = "+".join(f"eq(n\\,{i})" for i in frames)
    return f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{cond}'"


def whip_pan_filter(*, width: int, start: int, frames: int, distance: int, fps: int = 25, subframes: int = 16) -> str:
    """A crop window ``width`` wide that sits still, then slides ``distance`` pixels right over
    ``frames`` frames from ``start`` (a whip pan), then sits still again. The crop moves
    ``subframes`` times per frame and each output frame averages half of those positions: the
    directional motion blur of a real 180-degree shutter."""
    t = f"(n/{subframes})"
    x = f"{distance}*if(lt({t},{start}),0,if(lt({t},{start + frames}),({t}-{start})/{frames},1))"
    return f"fps={fps * subframes},crop=w={width}:h=ih:x='{x}':y=0,tmix=frames={subframes // 2},framestep={subframes}"


def audio_only(dst: str | Path) -> None:
    """A WAV file with a sine tone and no video stream."""
    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", str(dst)])
