"""The embedded demo corpus: small synthetic videos with known cuts, traps and bad inputs, and a
metadata CSV in Panda-70M's format, so the whole workflow runs offline on a laptop CPU.

Scenes are ffmpeg's generated test sources (moving patterns, fractal zooms, cellular automata),
so every cut time is known exactly. The captions in the metadata CSV are stand-in descriptions
used only by the sampler's keyword classifier; they are not Panda-70M's.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tav_pipeline.config import check_keys
from tav_pipeline.video import ffmpeg_binary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """``demo:`` in the config."""

    seed: int = 0
    width: int = 320
    height: int = 240
    fps: float = 24

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemoConfig:
        check_keys("demo", d, cls)
        return cls(**d)


# Scene sources (lavfi graphs without size/rate/duration, added per use). Each looks different
# in hue, saturation and brightness from the next, as real shots do.
SCENES = {
    "pattern": "testsrc2",
    "fractal": "mandelbrot",
    "bars": "smptehdbars",
    "rgb": "rgbtestsrc",
    "counter": "testsrc",
    "sunset": "gradients=speed=0.05:c0=#d04010:c1=#2010a0",
    "meadow": "gradients=speed=0.05:c0=#10a030:c1=#e0e040",
    "spectrum": "colorspectrum",
    # dark and saturated, then dark grey: the HSV detector sees the saturation jump (score ~130)
    # but the mean BGR difference is ~23, under the paper's validation threshold of 50
    "ember": "gradients=speed=0.05:c0=#400800:c1=#300020",
    "ash": "gradients=speed=0.05:c0=#282828:c1=#202020",
}


@dataclass(frozen=True)
class DemoVideo:
    """One demo video: its id, the scenes it concatenates, and what the pipeline should make of it."""

    video_id: str
    scenes: tuple[tuple[str, float], ...]
    caption: str
    expect: str
    """What the paper-mode pipeline should make of it: ``clip``, or the reject reason. The flash
    video gets a clip centred on the flash (the paper detector's known failure) and the dissolve
    none (its frame differences stay far below the threshold); the robust detector fixes both."""
    special: str = ""
    """How the file is made beyond plain concatenation: flash, dissolve, vfr, odd_size,
    truncated, audio_only, one_frame, missing."""


VIDEOS: tuple[DemoVideo, ...] = (
    DemoVideo("demo_two_scenes", (("pattern", 6.0), ("fractal", 6.0)), "a dog runs across a green park, then a cat sleeps on a sofa", "clip"),
    DemoVideo("demo_three_scenes", (("meadow", 5.0), ("bars", 4.0), ("pattern", 5.0)), "a mountain landscape with a lake at sunset", "clip"),
    DemoVideo("demo_early_cut", (("sunset", 2.0), ("fractal", 10.0)), "a chef cooks pasta in a kitchen with fresh vegetables", "clip"),
    DemoVideo("demo_late_cut", (("pattern", 10.0), ("meadow", 2.0)), "a football player scores a goal in a stadium", "clip"),
    DemoVideo("demo_cut_first_second", (("rgb", 0.3), ("fractal", 9.0)), "a car drives along a highway past trucks", "cut_too_early"),
    DemoVideo("demo_cut_last_second", (("fractal", 9.0), ("bars", 0.3)), "a news anchor talks in a tv studio", "window_too_short"),
    DemoVideo("demo_no_cut", (("fractal", 8.0),), "waves on a beach under a cloudy sky", "no_cut"),
    DemoVideo("demo_flash", (("pattern", 8.0), ("meadow", 4.0)), "a tutorial showing how to use a laptop", "clip", special="flash"),
    DemoVideo("demo_dissolve", (("pattern", 6.0), ("fractal", 6.0)), "a gamer plays a video game with a controller", "no_cut", special="dissolve"),
    DemoVideo("demo_vfr", (("sunset", 5.0), ("pattern", 5.0)), "people dancing at a party", "clip", special="vfr"),
    DemoVideo("demo_odd_size", (("bars", 5.0), ("fractal", 5.0)), "a horse eating grass in a field", "clip", special="odd_size"),
    DemoVideo("it's a \"demo\" clip", (("meadow", 5.0), ("pattern", 5.0)), "a bird flying over a forest", "clip"),
    DemoVideo("demo_truncated", (("pattern", 4.0), ("fractal", 4.0)), "a truck on a country road", "unreadable", special="truncated"),
    DemoVideo("demo_audio_only", (), "a podcast interview", "no_video_stream", special="audio_only"),
    DemoVideo("demo_one_frame", (("pattern", 1.0),), "a photo of a city skyline", "one_frame", special="one_frame"),
    # An ID Snakemake cannot take as a wildcard value (it ends in twenty copies of "0"): its key
    # gets a hash suffix. Its dim cut is found but fails the paper's validation, so it also shows
    # that a clip failing validation gets no keyframes or captions.
    DemoVideo("cam1_00000000000000000000", (("ember", 5.0), ("ash", 5.0)), "a campfire at night by a tent", "below_threshold"),
    DemoVideo("demo_missing", (("pattern", 1.0),), "a boat sailing on the sea", "not_found_locally", special="missing"),
)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")


def _scene_inputs(video: DemoVideo, cfg: DemoConfig, width: int, height: int) -> list[str]:
    args: list[str] = []
    for name, duration in video.scenes:
        source, _, options = SCENES[name].partition("=")
        extra = f"{options}:" if options else ""
        graph = f"{source}={extra}size={width}x{height}:rate={cfg.fps}"
        args += ["-f", "lavfi", "-t", f"{duration}", "-i", graph]
    return args


def make_video(video: DemoVideo, out_dir: Path, cfg: DemoConfig) -> Path | None:
    """Render one demo video into ``out_dir``; returns its path (``None`` for ``missing``)."""
    if video.special == "missing":
        return None
    out = out_dir / f"{video.video_id}.mp4"
    ff = ffmpeg_binary()
    base = [ff, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    if video.special == "audio_only":
        _run(base + ["-f", "lavfi", "-t", "3", "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac", str(out)])
        return out
    width, height = (cfg.width + 1, cfg.height + 1) if video.special == "odd_size" else (cfg.width, cfg.height)
    inputs = _scene_inputs(video, cfg, width, height)
    n = len(video.scenes)
    if video.special == "dissolve":
        first = video.scenes[0][1]
        graph = f"[0:v][1:v]xfade=transition=fade:duration=1:offset={first - 1.0},format=yuv420p[v]"
    else:
        graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    if video.special == "flash":
        # one white frame at 4 s: a flash, not a cut
        flash = int(4 * cfg.fps)
        graph = graph[:-3] + f"[c];[c]drawbox=color=white:t=fill:enable='eq(n,{flash})'[v]"
    if video.special == "vfr":
        # drop every 5th frame and keep the timestamps: variable frame rate
        graph = graph[:-3] + "[c];[c]select='not(eq(mod(n,5),4))'[v]"
    argv = base + inputs + ["-filter_complex", graph, "-map", "[v]"]
    if video.special == "odd_size":
        argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv444p"]
    else:
        argv += enc
    if video.special == "vfr":
        argv += ["-fps_mode", "vfr"]
    if video.special == "one_frame":
        argv += ["-frames:v", "1"]
    if video.special == "truncated":
        full = out_dir / f".{video.video_id}.full.mp4"
        _run(argv + [str(full)])
        data = full.read_bytes()
        out.write_bytes(data[: len(data) // 3])
        full.unlink()
        return out
    _run(argv + [str(out)])
    return out


def _timestamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"


def true_cuts(video: DemoVideo) -> list[float]:
    """Seconds at which each scene after the first starts (a dissolve: its midpoint; the 1 s
    dissolve ends where the first scene's footage does)."""
    times, t = [], 0.0
    for _, duration in video.scenes[:-1]:
        t += duration
        times.append(round(t - 0.5 if video.special == "dissolve" else t, 6))
    return times


def build_corpus(video_dir: str | Path, metadata_csv: str | Path, truth_json: str | Path, cfg: DemoConfig = DemoConfig()) -> pd.DataFrame:
    """Write every demo video, the Panda-70M-format metadata CSV and the ground truth."""
    out_dir = Path(video_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, truth = [], {}
    for video in VIDEOS:
        path = make_video(video, out_dir, cfg)
        duration = sum(d for _, d in video.scenes) or 3.0
        rows.append(
            {
                "videoID": video.video_id,
                "url": path.resolve().as_uri() if path is not None else "",
                "timestamp": repr([[_timestamp(0.0), _timestamp(duration)]]),
                "caption": repr([video.caption]),
                "matching_score": repr([0.5]),
                "desirable_filtering": repr(["desirable"]),
                "shot_boundary_detection": repr([[[_timestamp(0.0), _timestamp(duration)]]]),
            }
        )
        truth[video.video_id] = {"cuts": true_cuts(video), "expect": video.expect, "special": video.special, "file": str(path) if path else None}
        log.info("demo video %s: %s", video.video_id, video.expect)
    table = pd.DataFrame(rows)
    Path(metadata_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(metadata_csv, index=False)
    Path(truth_json).write_text(json.dumps({"config": asdict(cfg), "videos": truth}, indent=2) + "\n")
    return table
