"""Shared fixtures: small real videos made with ffmpeg's lavfi sources (with known cut frames),
a copy of the workflow and its demo run, and the tiny model, dataset and latent cache of the
post-training tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from _synthetic import render
from _train_data import build_latents, make_tav

MakeVideo = Callable[..., Path]


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


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread for the test (tiny models are dominated by thread start-up)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CogVideoX folder (the diffusers backend's test model), built once per session."""
    from tav_pipeline.tiny_cogvideox import build_tiny_cogvideox

    return build_tiny_cogvideox(tmp_path_factory.mktemp("tiny") / "tiny_cogvideox", seed=0)


@pytest.fixture(scope="session")
def tav_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tav.json of lavfi clips (``_train_data.make_tav``), made once per session."""
    return make_tav(tmp_path_factory.mktemp("tav"))


@pytest.fixture(scope="session")
def latents(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, tav_json: Path) -> Path:
    """The tiny model's latent cache of the tiny tav.json, made once per session."""
    return build_latents(tiny_model, tav_json, tmp_path_factory.mktemp("latents") / "tiny")
