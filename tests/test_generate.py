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

from tav_pipeline.backends import generate_videos_step  # noqa: E402
from tav_pipeline.errors import ConfigError, MissingAssetError, PromptFileError  # noqa: E402
from tav_pipeline.generate import read_prompts  # noqa: E402
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
    with pytest.raises(PromptFileError, match="bad.txt: line 2 is blank") as info:
        read_prompts(tmp_path / "bad.txt")
    assert not isinstance(info.value, ConfigError)  # a fault of the file, not of the config
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(PromptFileError, match="holds no prompt"):
        read_prompts(tmp_path / "empty.txt")


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
    result = generate_videos_step(None, prompts, outs, tiny_train(tiny_model), GENERATE, threads=1)
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
            ckpt, prompts, out, tiny_train(tiny_model), {**GENERATE, "weights": weights}, threads=1
        )
        videos[name] = _frames(out["C"] / "0.mp4")
    assert json.loads((tmp_path / "ema" / "C" / "prompts.json").read_text())["checkpoint"] == "epoch_3"
    assert np.array_equal(videos["model"], videos["base"])  # model/ holds the pretrained weights here
    assert not np.array_equal(videos["ema"], videos["base"])
    with pytest.raises(MissingAssetError, match="model_ema"):
        generate_videos_step(
            tmp_path, prompts, {"C": tmp_path / "x"}, tiny_train(tiny_model), GENERATE
        )


def test_batched_prompts_give_the_videos_of_unbatched_ones(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every prompt of a batch draws from its own generator (seed + i): batch 1 and batch 3 (one full
    batch and one of 1) make the same video for every prompt, up to float reduction order (batched
    matrix products sum in another order: about 1e-6 here, so a pixel may round one level apart)."""
    import tav_pipeline.video

    written: dict[str, np.ndarray] = {}
    encode = tav_pipeline.video.encode_frames

    def keep(frames: list[np.ndarray], path: Path, **kw: object) -> None:
        written[str(path)] = np.stack(frames)
        encode(frames, path, **kw)

    monkeypatch.setattr(tav_pipeline.video, "encode_frames", keep)
    prompts = _prompts(tmp_path, {"C": ["Previous scene: a dog; Next scene: a cat", "a cat", "a boat at sea", "a dog"]})
    videos = {}
    for batch in (1, 3):
        out = {"C": tmp_path / f"b{batch}" / "C"}
        gen = {**GENERATE, "diffusers": {**GENERATE["diffusers"], "batch_size": batch}}
        result = generate_videos_step(None, prompts, out, tiny_train(tiny_model), gen, threads=1)
        assert [p.name for p in result["C"]] == ["0.mp4", "1.mp4", "2.mp4", "3.mp4"]
        videos[batch] = [written[str(p)].astype(int) for p in result["C"]]
    for one, three in zip(videos[1], videos[3], strict=True):
        assert one.shape == (9, 32, 32, 3)
        assert np.abs(one - three).max() <= 1 and np.mean(one == three) > 0.99
    assert np.abs(videos[3][0] - videos[3][1]).max() > 10  # different prompts and seeds differ for real
