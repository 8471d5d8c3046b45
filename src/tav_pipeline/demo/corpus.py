"""The embedded demo corpus: videos of the miniature world (:mod:`tav_pipeline.demo.world`) with hard
cuts at known frames, the traps and broken files a real corpus has, and a metadata CSV in Panda-70M's
format, so the whole workflow runs offline on a laptop CPU.

Every scene is a scene of the world, so the true caption of every scene is known (``truth.json``
lists each video's scenes with their captions and start times). The captions in the metadata CSV are
the true captions joined; the sampler's keyword classifier reads them, nothing else does.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from tav_pipeline.config import check_keys
from tav_pipeline.demo.world import Scene, random_scene, render_frame, render_scenes, write_video
from tav_pipeline.errors import TavError
from tav_pipeline.video import ffmpeg_binary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """``demo:`` in the config."""

    seed: int = 0
    width: int = 320
    height: int = 240
    fps: float = 24
    world_videos: int = 0
    """Two- and three-scene videos of the world added to the fixed videos (:data:`VIDEOS`)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemoConfig:
        check_keys("demo", d, cls)
        return cls(**d)


SceneSpec = Scene | str
"""A world scene, or the name of an extra scene (:data:`~tav_pipeline.demo.world.EXTRA_SCENES`)."""


@dataclass(frozen=True)
class DemoVideo:
    """One demo video: its id, the scenes it concatenates, and what the pipeline should make of it."""

    video_id: str
    scenes: tuple[tuple[SceneSpec, float], ...]
    caption: str
    expect: str
    """What the paper-mode pipeline should make of it: ``clip``, or the reject reason. The flash
    video gets a clip centred on the flash (the paper detector's known failure) and the dissolve
    none (its frame differences stay far below the threshold); the robust detector fixes both."""
    special: str = ""
    """How the file is made beyond plain concatenation: flash, dissolve, vfr, odd_size,
    truncated, audio_only, one_frame, missing."""


def _w(spec: str) -> Scene:
    """``"white ball red left"`` -> a world scene (colour, shape, background, motion)."""
    colour, shape, background, motion = spec.split()
    return Scene(background, shape, colour, motion)


def _caption(scenes: tuple[tuple[SceneSpec, float], ...]) -> str:
    return ", then ".join(s.caption for s, _ in scenes if isinstance(s, Scene)) or "a dark gradient"


def _fixed(video_id: str, scenes: tuple[tuple[SceneSpec, float], ...], expect: str, special: str = "") -> DemoVideo:
    return DemoVideo(video_id, scenes, _caption(scenes), expect, special)


VIDEOS: tuple[DemoVideo, ...] = (
    _fixed("demo_two_scenes", ((_w("white ball red right"), 6.0), (_w("black box blue left"), 6.0)), "clip"),
    _fixed("demo_three_scenes", ((_w("black triangle green up"), 5.0), (_w("white box yellow right"), 4.0), (_w("white ball blue down"), 5.0)), "clip"),
    _fixed("demo_early_cut", ((_w("white box red left"), 2.0), (_w("black ball green right"), 10.0)), "clip"),
    _fixed("demo_late_cut", ((_w("black ball yellow right"), 10.0), (_w("white triangle blue up"), 2.0)), "clip"),
    _fixed("demo_cut_first_second", ((_w("white ball green left"), 0.3), (_w("black box red right"), 9.0)), "cut_too_early"),
    _fixed("demo_cut_last_second", ((_w("black triangle blue right"), 9.0), (_w("white box yellow left"), 0.3)), "window_too_short"),
    _fixed("demo_no_cut", ((_w("white triangle red right"), 8.0),), "no_cut"),
    _fixed("demo_flash", ((_w("black box green right"), 8.0), (_w("white ball red left"), 4.0)), "clip", "flash"),
    _fixed("demo_dissolve", ((_w("white ball blue right"), 6.0), (_w("black triangle yellow left"), 6.0)), "no_cut", "dissolve"),
    _fixed("demo_vfr", ((_w("white triangle yellow down"), 5.0), (_w("black ball red up"), 5.0)), "clip", "vfr"),
    _fixed("demo_odd_size", ((_w("black box red left"), 5.0), (_w("white triangle green right"), 5.0)), "clip", "odd_size"),
    _fixed("it's a \"demo\" clip", ((_w("white box green up"), 5.0), (_w("black triangle red down"), 5.0)), "clip"),
    _fixed("demo_truncated", ((_w("white ball yellow right"), 4.0), (_w("black box blue left"), 4.0)), "unreadable", "truncated"),
    DemoVideo("demo_audio_only", (), "a podcast interview", "no_video_stream", special="audio_only"),
    _fixed("demo_one_frame", ((_w("black ball green right"), 1.0),), "one_frame", "one_frame"),
    # An ID Snakemake cannot take as a wildcard value (it ends in twenty copies of "0"): its key
    # gets a hash suffix. Its dim cut is found but fails the paper's validation, so it also shows
    # that a clip failing validation gets no keyframes or captions.
    _fixed("cam1_00000000000000000000", (("ember", 5.0), ("ash", 5.0)), "below_threshold"),
    _fixed("demo_missing", ((_w("white box red right"), 1.0),), "not_found_locally", "missing"),
)
"""The fixed videos: traps and broken inputs, each with the outcome the pipeline must reach."""


def world_videos(cfg: DemoConfig) -> tuple[DemoVideo, ...]:
    """``cfg.world_videos`` plain multi-scene videos drawn from the world with ``cfg.seed``.

    Each has two scenes (one in four: three) of 3-7 s with hard cuts between different backgrounds;
    the clip the pipeline cuts from it is centred on its first cut.
    """
    rng = np.random.default_rng([cfg.seed, 16])
    videos = []
    for i in range(cfg.world_videos):
        scenes: list[tuple[SceneSpec, float]] = []
        prev: str | None = None
        for _ in range(3 if rng.random() < 0.25 else 2):
            scene = random_scene(rng, avoid_background=prev)
            prev = scene.background
            scenes.append((scene, float(round(rng.uniform(3.0, 7.0) * 4) / 4)))
        videos.append(_fixed(f"world_{i:03d}", tuple(scenes), "clip"))
    return tuple(videos)


def demo_videos(cfg: DemoConfig) -> tuple[DemoVideo, ...]:
    """Every demo video: the fixed ones, then the world's."""
    return VIDEOS + world_videos(cfg)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TavError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")


def _frames(video: DemoVideo, cfg: DemoConfig, width: int, height: int) -> list[np.ndarray]:
    if video.special != "dissolve":
        frames = list(render_scenes(video.scenes, cfg.fps, width, height))
        if video.special == "flash":
            frames[int(4 * cfg.fps)] = np.full_like(frames[0], 255)  # one white frame at 4 s: a flash, not a cut
        return frames
    # a 1 s cross-fade ending where the first scene's footage ends (ffmpeg's xfade with offset d1 - 1)
    (s1, d1), (s2, d2) = video.scenes
    n1, n2, fade = round(d1 * cfg.fps), round(d2 * cfg.fps), round(cfg.fps)
    first = [render_frame(s1, i / (n1 - 1), width, height) for i in range(n1)]
    second = [render_frame(s2, i / (n2 - 1), width, height) for i in range(n2)]
    out = first[: n1 - fade]
    for k in range(fade):
        a = (k + 1) / (fade + 1)
        out.append((first[n1 - fade + k] * (1 - a) + second[k] * a).round().astype(np.uint8))
    return out + second[fade:]


def make_video(video: DemoVideo, out_dir: Path, cfg: DemoConfig) -> Path | None:
    """Render one demo video into ``out_dir``; returns its path (``None`` for ``missing``)."""
    if video.special == "missing":
        return None
    out = Path(out_dir) / f"{video.video_id}.mp4"
    if video.special == "audio_only":
        _run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-t", "3",
              "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac", str(out)])
        return out
    width, height = (cfg.width + 1, cfg.height + 1) if video.special == "odd_size" else (cfg.width, cfg.height)
    frames = _frames(video, cfg, width, height)
    filters, extra, pix_fmt = "", [], "yuv420p"
    if video.special == "vfr":
        # drop every 5th frame and keep the timestamps: variable frame rate
        filters, extra = "select='not(eq(mod(n,5),4))'", ["-fps_mode", "vfr"]
    if video.special == "odd_size":
        pix_fmt = "yuv444p"
    if video.special == "one_frame":
        extra = ["-frames:v", "1"]
    if video.special == "truncated":
        full = write_video(frames, Path(out_dir) / f".{video.video_id}.full.mp4", cfg.fps)
        data = full.read_bytes()
        out.write_bytes(data[: len(data) // 3])
        full.unlink()
        return out
    return write_video(frames, out, cfg.fps, filters=filters, pix_fmt=pix_fmt, extra=extra)

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


def scene_records(video: DemoVideo) -> list[dict[str, Any]]:
    """Each scene's true caption (``None`` outside the grammar), start and end in seconds."""
    records, t = [], 0.0
    for scene, duration in video.scenes:
        caption = scene.caption if isinstance(scene, Scene) else None
        records.append({"caption": caption, "start": round(t, 6), "end": round(t + duration, 6),
                        "scene": asdict(scene) if isinstance(scene, Scene) else scene})
        t += duration
    return records


def build_corpus(video_dir: str | Path, metadata_csv: str | Path, truth_json: str | Path, cfg: DemoConfig = DemoConfig()) -> pd.DataFrame:
    """Write every demo video, the Panda-70M-format metadata CSV and the ground truth."""
    out_dir = Path(video_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, truth = [], {}
    for video in tqdm(demo_videos(cfg), desc="demo corpus", unit="video"):
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
        truth[video.video_id] = {
            "cuts": true_cuts(video),
            "expect": video.expect,
            "special": video.special,
            "file": str(path) if path else None,
            "scenes": scene_records(video),
        }
        log.info("demo video %s: %s", video.video_id, video.expect)
    table = pd.DataFrame(rows)
    Path(metadata_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(metadata_csv, index=False)
    Path(truth_json).write_text(json.dumps({"config": asdict(cfg), "videos": truth}, indent=2) + "\n")
    return table
