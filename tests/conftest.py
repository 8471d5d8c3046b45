"""Shared fixtures: small real videos made with ffmpeg's lavfi sources, with known cut frames."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

SOURCES = {
    "pattern": "testsrc2",
    "fractal": "mandelbrot",
    "bars": "smptehdbars",
    "sunset": "gradients=speed=0.05:c0=#d04010:c1=#2010a0",
    "meadow": "gradients=speed=0.05:c0=#10a030:c1=#e0e040",
    "red": "color=c=#c02020",
    "blue": "color=c=#2040c0",
}

MakeVideo = Callable[..., Path]


def render(
    path: Path,
    scenes: Sequence[tuple[str, float]],
    *,
    size: tuple[int, int] = (160, 120),
    fps: float = 24,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Concatenate lavfi scenes (name, seconds) into an H.264 mp4; cut frames are known exactly."""
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for name, seconds in scenes:
        src, _, opts = SOURCES[name].partition("=")
        extra = f"{opts}:" if opts else ""
        argv += ["-f", "lavfi", "-t", str(seconds), "-i", f"{src}={extra}size={size[0]}x{size[1]}:rate={fps}"]
    n = len(scenes)
    if audio:
        argv += ["-f", "lavfi", "-t", str(sum(s for _, s in scenes)), "-i", "sine=frequency=300"]
    w, h = size
    graph = "".join(f"[{i}:v]scale={w}:{h},setsar=1[s{i}];" for i in range(n))
    graph += "".join(f"[s{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    argv += ["-filter_complex", graph, "-map", "[v]"]
    if audio:
        argv += ["-map", f"{n}:a", "-c:a", "aac"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", pix_fmt, str(path)]
    subprocess.run(argv, check=True)
    return path


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir: Path) -> MakeVideo:
    """``make_video(name, [(scene, seconds), ...], **kw)`` renders once per session."""
    cache: dict[str, Path] = {}

    def make(name: str, scenes: Sequence[tuple[str, float]], **kw: object) -> Path:
        if name not in cache:
            cache[name] = render(video_dir / f"{name}.mp4", scenes, **kw)  # type: ignore[arg-type]
        return cache[name]

    return make


ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "scripts", "envs", "profiles"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not its results) into ``dest`` so a run there starts cold."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo profile run once, cold, to its default target in a copy of the workflow.
    Tests read its results; the SLURM test copies it and reruns part of it on a cluster."""
    work = copy_workflow(tmp_path_factory.mktemp("demo") / "local")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    proc = subprocess.run(
        SNAKEMAKE + ["--profile", "profiles/demo", "--cores", "2"],
        cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=1800,
    )
    (work / "snakemake.out").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return work
