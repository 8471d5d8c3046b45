"""Generation through the pipeline class: seeded, paired across groups and checkpoints, the
checkpoint's EMA weights swapped in, mp4 at train.fps, prompts.json beside the videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _train_data import tiny_train  # noqa: E402

from tav_pipeline.errors import ConfigError, MissingAssetError  # noqa: E402
from tav_pipeline.generate import generate_videos_step, read_prompts  # noqa: E402
from tav_pipeline.video import iter_frames, probe  # noqa: E402

GENERATE = {"seed": 7, "diffusers": {"num_inference_steps": 2, "device": "cpu"}}

pytestmark = pytest.mark.usefixtures("one_thread")


def _frames(path: Path) -> np.ndarray:
    return np.stack([f.image for f in iter_frames(path, pixel_format="rgb24")])


def _prompts(tmp: Path, groups: dict[str, list[str]]) -> dict[str, Path]:
    out = {}
    for g, lines in groups.items():
        out[g] = tmp / f"{g}.txt"
        out[g].write_text("\n".join(lines) + "\n")
    return out


def test_read_prompts_refuses_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("a dog\nPrevious scene: a; Next scene: b\n\n")
    assert read_prompts(tmp_path / "ok.txt") == ["a dog", "Previous scene: a; Next scene: b"]
    (tmp_path / "bad.txt").write_text("a dog\n\na cat\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_prompts(tmp_path / "bad.txt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A checkpoint folder whose ``model`` is the pretrained transformer and whose ``model_ema``
    differs from it."""
    from diffusers import CogVideoXTransformer3DModel

    folder = tmp_path_factory.mktemp("ckpt") / "epoch_3"
    t = CogVideoXTransformer3DModel.from_pretrained(str(tiny_model), subfolder="transformer")
    t.save_pretrained(str(folder / "model"))
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.05)
    t.save_pretrained(str(folder / "model_ema"))
    return folder


def test_baseline_videos_are_seeded_and_paired(tmp_path: Path, tiny_model: Path) -> None:
    prompts = _prompts(tmp_path, {"A": ["a dog on a beach", "a cat"], "B": ["a dog on a beach"]})
    outs = {g: tmp_path / "gen" / g for g in prompts}
    result = generate_videos_step(str(tiny_model), None, prompts, outs, tiny_train(tiny_model), GENERATE, threads=1)
    assert [p.name for p in result["A"]] == ["0.mp4", "1.mp4"]
    info = probe(outs["A"] / "0.mp4")
    assert (info.width, info.height, info.fps) == (32, 32, 8.0)
    assert len(_frames(outs["A"] / "0.mp4")) == 9
    doc = json.loads((outs["A"] / "prompts.json").read_text())
    assert doc["group"] == "A" and doc["prompts"] == ["a dog on a beach", "a cat"] and doc["seeds"] == [7, 8]
    assert doc["checkpoint"] == "baseline" and doc["weights"] == "pretrained"
    # same prompt, same index, same seed: the same video in every group (paired samples)
    assert np.array_equal(_frames(outs["A"] / "0.mp4"), _frames(outs["B"] / "0.mp4"))
    assert not np.array_equal(_frames(outs["A"] / "0.mp4"), _frames(outs["A"] / "1.mp4"))


def test_checkpoints_generate_with_their_ema_weights(tmp_path: Path, tiny_model: Path, checkpoint: Path) -> None:
    prompts = _prompts(tmp_path, {"C": ["Previous scene: a dog; Next scene: a cat"]})
    videos = {}
    for name, ckpt, weights in (("base", None, "ema"), ("ema", checkpoint, "ema"), ("model", checkpoint, "model")):
        out = {"C": tmp_path / name / "C"}
        generate_videos_step(
            str(tiny_model), ckpt, prompts, out, tiny_train(tiny_model), {**GENERATE, "weights": weights}, threads=1
        )
        videos[name] = _frames(out["C"] / "0.mp4")
    assert json.loads((tmp_path / "ema" / "C" / "prompts.json").read_text())["checkpoint"] == "epoch_3"
    assert np.array_equal(videos["model"], videos["base"])  # model/ holds the pretrained weights here
    assert not np.array_equal(videos["ema"], videos["base"])
    with pytest.raises(MissingAssetError, match="model_ema"):
        generate_videos_step(
            str(tiny_model), tmp_path, prompts, {"C": tmp_path / "x"}, tiny_train(tiny_model), GENERATE
        )
