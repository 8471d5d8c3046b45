"""The Open-Sora-Plan backend end to end against the stand-in checkout and weights
(tests/rehearsal/opensora_standin.py), launched as a real run launches them: the real
``accelerate launch`` and ``torchrun`` from the environment, no stub on PATH, on a CPU.

Checks that every epoch lands in its folder, that later epochs resume from the earlier one (three
launches give bit for bit the weights of two), and that the sampler's videos are real mp4s mapped
to their prompts, decodable by the project's reader and countable by its evaluation."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _synthetic import render
from rehearsal import opensora_standin as standin
from safetensors.numpy import load_file

from tav_pipeline.backends.opensora import checks, commands
from tav_pipeline.backends.opensora import sample as sampler
from tav_pipeline.backends.opensora import train as trainer
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import SegmentsConfig, count_segments, read_generated
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import GenerateConfig, TrainConfig
from tav_pipeline.video import iter_frames, probe

CLIP_SCENES = [("red", 2.0), ("blue", 2.125)], [("meadow", 4.125)], [("sunset", 4.125)], [("bars", 4.125)]
"""Four 33-frame 64x64 clips at 8 fps: one 33x64x64 bucket of 4 (the fewest v1.3.1 keeps), 4 steps an epoch."""
PROMPTS = {
    "A": ["a red kite over a beach", "a dog runs in the snow", "a kettle on a stove"],
    "C": ["Previous scene: a dog runs in the snow; Next scene: a cat sleeps", "a kettle on a stove"],
}
WEIGHTS = trainer.ckpt.MODEL_DIR, trainer.ckpt.EMA_DIR


class Lines(logging.Handler):
    """Collects what the launched commands print (``run_logged`` logs each line as ``| line``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _capture() -> Lines:
    handler = Lines()
    for name in ("tav_pipeline.train.process", "tav_pipeline.backends.opensora.train", "tav_pipeline.backends.opensora.sample"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    return handler


def _release(handler: Lines) -> None:
    for name in ("tav_pipeline.train.process", "tav_pipeline.backends.opensora.train", "tav_pipeline.backends.opensora.sample"):
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def launchers() -> Iterator[None]:
    """``accelerate`` and ``torchrun`` of this environment on PATH (``.venv/bin/python -m pytest``
    does not put ``.venv/bin`` there)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if shutil.which("accelerate") is None or shutil.which("torchrun") is None:
            pytest.skip("accelerate or torchrun is not installed")
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, launchers: None) -> dict[str, Any]:
    """The stand-in checkout and weights, four clips and their annotation, and the train: section."""
    root = tmp_path_factory.mktemp("osp")
    weights = root / "resources" / "models" / "Open-Sora-Plan-v1.3.0"
    standin.build_checkout(root / "resources" / "Open-Sora-Plan")
    standin.build_weights(weights / "any93x640x640", weights / "vae", root / "resources" / "cache_dir", "google/mt5-xxl")
    clips = root / "clips"
    clips.mkdir()
    items = []
    for i, scenes in enumerate(CLIP_SCENES):
        render(clips / f"clip{i}.mp4", scenes, size=(64, 64), fps=8)
        items.append(
            {"path": f"clip{i}.mp4", "cap": f"clip {i}", "resolution": {"height": 64, "width": 64}, "num_frames": 33, "fps": 8}
        )
    (root / "tav_train.json").write_text(json.dumps(items))
    (root / "data.txt").write_text(f"{clips},{root / 'tav_train.json'}\n")
    train = {
        "model": "opensora_plan",
        "epochs": [1, 3],
        "height": 64,
        "width": 64,
        "opensora": {
            "repo": str(root / "resources" / "Open-Sora-Plan"),
            "check_commit": False,
            "pretrained": str(weights / "any93x640x640"),
            "ae_path": str(weights / "vae"),
            "cache_dir": str(root / "resources" / "cache_dir"),
        },
    }
    return {"root": root, "data_txt": root / "data.txt", "train": train}


def _train(world: dict[str, Any], relaunch: str) -> dict[str, Any]:
    root = world["root"] / relaunch
    train = {**world["train"], "opensora": {**world["train"]["opensora"], "relaunch": relaunch}}
    lines = _capture()
    try:
        first = trainer.train_opensora_step(world["data_txt"], None, root / "epoch_1", root / "work1", train, 1)
        after_first = len(lines.lines)
        if relaunch == "per_epoch":  # a save at step 8 cut short by an earlier, killed run of this job
            (root / "work3" / "checkpoint-8" / "model_ema").mkdir(parents=True)
        third = trainer.train_opensora_step(world["data_txt"], root / "epoch_1", root / "epoch_3", root / "work3", train, 3)
    finally:
        _release(lines)
    return {
        "root": root,
        "states": (first, third),
        "job1": lines.lines[:after_first],
        "job3": lines.lines[after_first:],
    }


@pytest.fixture(scope="module")
def per_epoch(world: dict[str, Any]) -> dict[str, Any]:
    return _train(world, "per_epoch")


@pytest.fixture(scope="module")
def repeat(world: dict[str, Any]) -> dict[str, Any]:
    return _train(world, "repeat")


def _printed(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if line.startswith("| ") and text in line]


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    return load_file(str(folder / standin.WEIGHTS_NAME))


@pytest.mark.parametrize("relaunch", ["per_epoch", "repeat"])
def test_every_epoch_is_saved_in_its_folder(request: pytest.FixtureRequest, relaunch: str) -> None:
    run = request.getfixturevalue(relaunch)
    first, third = run["states"]
    assert (first.global_step, third.global_step, third.steps_per_epoch, third.usable_clips) == (4, 12, 4, 4)
    for epoch, state in ((1, first), (3, third)):
        folder = run["root"] / f"epoch_{epoch}"
        assert ckpt.TrainState.read(folder).epoch == epoch == state.epoch
        for sub in WEIGHTS:
            config = json.loads((folder / sub / "config.json").read_text())
            assert config["_class_name"] == "OpenSoraT2V_v1_3" and (config["sparse1d"], config["sparse_n"]) == (True, 4)
            assert (folder / sub / standin.WEIGHTS_NAME).is_file()
        assert ckpt.weights_dir(folder, "ema") == folder / "model_ema"
        assert json.loads((folder / "model_ema" / "config.json").read_text())["optimization_step"] == state.global_step
        assert (folder / "latest").read_text() == "pytorch_model" and list(folder.glob("random_states_*.pkl"))
        losses = (folder / "logs" / f"work{epoch}" / "standin_losses.tsv").read_text().splitlines()
        assert len(losses) == (4 if epoch == 1 else 8)  # one line a step, over the job's launches
        assert json.loads((folder / "opensora_plan.json").read_text())["usable"] == 4
    assert third.resumed_from == str(run["root"] / "epoch_1")
    assert not (run["root"] / "work1").exists() and not (run["root"] / "work3").exists()


def test_later_epochs_resume_from_the_earlier_ones(per_epoch: dict[str, Any], repeat: dict[str, Any]) -> None:
    assert _printed(per_epoch["job1"], "Starting a new training run")
    assert [line.split("Resuming from checkpoint ")[1] for line in _printed(per_epoch["job3"], "Resuming")] == [
        "checkpoint-4",
        "checkpoint-8",
    ]
    assert [line.split("Resuming from checkpoint ")[1] for line in _printed(repeat["job3"], "Resuming")] == ["checkpoint-4"]
    # each launch makes one pass: the annotation once per epoch, or repeated for the job's epochs
    assert len(_printed(per_epoch["job3"], "before filter: 4, after filter: 4, use_ratio: 100.0%")) == 2
    assert len(_printed(repeat["job3"], "before filter: 8, after filter: 8")) == 1
    # the save at step 8 an earlier run left half written is cleared, not resumed from
    assert [line for line in per_epoch["job3"] if "removing" in line and "checkpoint-8" in line]
    pretrained = _tensors(Path(per_epoch["root"].parent / "resources/models/Open-Sora-Plan-v1.3.0/any93x640x640"))
    one, three = (_tensors(per_epoch["root"] / f"epoch_{e}" / "model") for e in (1, 3))
    assert all(not np.array_equal(pretrained[k], one[k]) and not np.array_equal(one[k], three[k]) for k in one)
    # three launches (4 -> 8 -> 12 steps, resuming twice) give the weights, EMA and optimizer state
    # of two (4 -> 12): everything a resume needs is saved and read back
    for sub in WEIGHTS:
        a, b = (_tensors(run["root"] / "epoch_3" / sub) for run in (per_epoch, repeat))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_flags_the_trainer_and_sampler_do_not_know_fail_as_upstream(world: dict[str, Any], tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict(world["train"])
    repo = Path(cfg.opensora.repo)
    train = commands.train_argv(
        cfg, accelerate_yaml="a.yaml", data_txt=world["data_txt"], output_dir=tmp_path, max_train_steps=1,
        checkpointing_steps=1,
    )[4:]
    sample = commands.sample_argv(
        cfg, GenerateConfig(), model_path=cfg.opensora.pretrained, prompt_file=tmp_path / "p.txt",
        save_dir=tmp_path / "s", port=1,
    )[7:]
    env = {**os.environ, **commands.checkout_env(repo)}
    for argv in ([sys.executable, *train], [sys.executable, *sample]):
        proc = subprocess.run([*argv, "--no_such_flag"], cwd=repo, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 2 and "unrecognized arguments: --no_such_flag" in proc.stderr


@pytest.fixture(scope="module")
def sampled(world: dict[str, Any], per_epoch: dict[str, Any]) -> dict[str, Any]:
    root = world["root"] / "generated"
    prompt_files = {}
    for group, prompts in PROMPTS.items():
        prompt_files[group] = root / "prompts" / f"{group}.txt"
        prompt_files[group].parent.mkdir(parents=True, exist_ok=True)
        prompt_files[group].write_text("\n".join(prompts) + "\n")
    lines = _capture()
    out = {}
    try:
        for name, folder in (("baseline", None), ("epoch_3", per_epoch["root"] / "epoch_3")):
            dirs = {g: root / "opensora_plan" / name / g for g in PROMPTS}
            sampler.sample_opensora_step(folder, prompt_files, dirs, root / "work", world["train"], {}, name)
            out[name] = dirs
    finally:
        _release(lines)
    return {"dirs": out, "lines": lines.lines}


def _frames(path: Path) -> np.ndarray:
    return np.stack([f.image for f in iter_frames(path)])


def _colour_changes(frames: np.ndarray) -> int:
    """Frames whose mean colour jumps from the previous one's (a flat-colour scene change)."""
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    return int((np.abs(np.diff(means, axis=0)).max(axis=1) > 40).sum())


def test_sampled_videos_are_real_mp4s_mapped_to_their_prompts(sampled: dict[str, Any], world: dict[str, Any]) -> None:
    segments = set()
    for checkpoint, dirs in sampled["dirs"].items():
        for group, folder in dirs.items():
            assert sorted(p.name for p in folder.iterdir()) == sorted(
                ["prompts.json"] + [f"{i}.mp4" for i in range(len(PROMPTS[group]))]
            )
            videos = read_generated(folder, model="opensora_plan", checkpoint=checkpoint)
            assert [v.prompt for v in videos] == PROMPTS[group]
            assert json.loads((folder / "prompts.json").read_text())["checkpoint"] == checkpoint
            for video in videos:
                info = probe(video.path)
                assert (info.width, info.height, info.fps, info.codec) == (64, 64, 8.0, "h264")
                frames = _frames(Path(video.path))
                assert frames.shape == (33, 64, 64, 3)
                row = count_segments(video, SegmentsConfig())
                assert row["status"] == "ok" and row["frames"] == 33
                assert row["segments"] == _colour_changes(frames) + 1
                segments.add(row["segments"])
    assert segments == {1, 2}  # the evaluation meets both one-scene and two-scene videos
    model_paths = [line.split("--model_path ")[1].split()[0] for line in sampled["lines"] if "running:" in line]
    pretrained = str(Path(world["train"]["opensora"]["pretrained"]).resolve())
    ema = str((world["root"] / "per_epoch" / "epoch_3" / "model_ema").resolve())
    assert model_paths == [pretrained, pretrained, ema, ema]


def test_videos_follow_the_prompt_and_the_weights(sampled: dict[str, Any]) -> None:
    base, trained = sampled["dirs"]["baseline"], sampled["dirs"]["epoch_3"]
    # the same prompt at another index of another group: the same video
    assert np.array_equal(_frames(base["A"] / "2.mp4"), _frames(base["C"] / "1.mp4"))
    assert not np.array_equal(_frames(base["A"] / "0.mp4"), _frames(base["A"] / "1.mp4"))
    # the epoch's weights: other videos than the pretrained model's
    for group, prompts in PROMPTS.items():
        for i in range(len(prompts)):
            assert not np.array_equal(_frames(base[group] / f"{i}.mp4"), _frames(trained[group] / f"{i}.mp4"))


def test_standin_assets_pass_the_pipelines_checks(tmp_path: Path) -> None:
    train = {
        "opensora": {
            "repo": str(tmp_path / "Open-Sora-Plan"),
            "pretrained": str(tmp_path / "w" / "any93x640x640"),
            "ae_path": str(tmp_path / "w" / "vae"),
            "cache_dir": str(tmp_path / "cache"),
        }
    }
    settings = standin.build_assets(train, git=True)
    cfg = TrainConfig.from_dict({"opensora": settings})
    assert cfg.opensora.check_commit and len(cfg.opensora.commit) == 40
    checks.check_checkout(cfg)
    checks.check_settings(cfg)
    checks.check_weights(cfg)
    snapshot = tmp_path / "cache" / "models--google--mt5-xxl" / "snapshots" / standin.SNAPSHOT
    assert (snapshot / "config.json").resolve().parent.name == "blobs"
    # v1.3.1 builds the model from the folder's config, so a setting it contradicts is refused
    for key, value in (("sparse1d", False), ("interpolation_scale_t", 2.0)):
        with pytest.raises(ConfigError, match=f"train.opensora.{key}"):
            checks.check_weights(TrainConfig.from_dict({"opensora": {**settings, key: value}}))
