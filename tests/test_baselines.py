"""Pretrained-only models (generate.baselines): typed specs, videos through the same generation
path as the post-trained model (tiny CogVideoX and tiny EasyAnimate, the real pipeline classes),
seeded and paired, the manifest the evaluation reads, and the fetch rule's errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


from tav_pipeline.backends.diffusers.generate import fetch_baseline_step, generate_baseline_step  # noqa: E402
from tav_pipeline.errors import ConfigError, MissingAssetError  # noqa: E402
from tav_pipeline.train.config import BaselineModel, GenerateConfig  # noqa: E402
from tav_pipeline.video import iter_frames, probe  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_thread")]

GROUPS = {"A": ["a dog on a beach", "a cat"], "B": ["a dog on a beach", "two birds in the sky"]}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    from tav_pipeline.tiny_easyanimate import build_tiny_easyanimate

    return {
        "cogvideox": tiny_model,
        "easyanimate": build_tiny_easyanimate(tmp_path_factory.mktemp("tiny") / "tiny_easyanimate", seed=0),
    }


def spec(pretrained: str | Path, **over: Any) -> dict[str, Any]:
    """A complete ``generate.baselines`` entry for a tiny model: 9 frames of 32x48 at 6 fps, 2 steps."""
    d: dict[str, Any] = {
        "pretrained": str(pretrained),
        "hub_id": "",
        "revision": "main",
        "num_frames": 9,
        "height": 32,
        "width": 48,
        "fps": 6,
        "num_inference_steps": 2,
        "guidance_scale": 6.0,
        "negative_prompt": "",
        "device": "cpu",
        "dtype": "float32",
        "call_kwargs": {},
    }
    d.update(over)
    return d


def _prompts(folder: Path, groups: dict[str, list[str]]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for g, lines in groups.items():
        out[g] = folder / f"{g}.txt"
        out[g].write_text("\n".join(lines) + "\n")
    return out


def _frames(path: Path) -> np.ndarray:
    return np.stack([f.image for f in iter_frames(path, pixel_format="rgb24")])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same video up to the mp4 encoder: libx264 through PyAV does not always encode identical
    frames to identical bytes within one process (a few macroblocks change by up to ~20 levels; the
    pipeline's own frames are bit-exact, see ``test_pipeline_frames_are_bit_exact_across_loads``),
    so decoded videos are compared by their mean absolute difference: below 1 level between two
    encodes of the same frames, 15 or more between two seeds (the tiny models' random text encoders
    move a video by only 2-3 levels per prompt, so prompts are checked in the manifest instead)."""
    return a.shape == b.shape and float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) < 2.0


def _generate(
    tmp: Path, name: str, model: str, s: dict[str, Any], seed: int = 11, groups: dict[str, list[str]] = GROUPS
) -> dict[str, Path]:
    prompts = _prompts(tmp / name / "prompts", groups)
    outs = {g: tmp / name / model / "baseline" / g for g in prompts}
    generate_baseline_step(s, model, prompts, outs, seed, threads=1)
    return outs


@pytest.mark.parametrize("family", ["cogvideox", "easyanimate"])
def test_baseline_videos_manifest_and_seeds(tmp_path: Path, tiny_models: dict[str, Path], family: str) -> None:
    s = spec(tiny_models[family])
    outs = _generate(tmp_path, "run1", family, s)
    for group, lines in GROUPS.items():
        names = sorted(p.name for p in outs[group].iterdir())
        assert names == [*(f"{i}.mp4" for i in range(len(lines))), "prompts.json"]
        for i in range(len(lines)):
            info = probe(outs[group] / f"{i}.mp4")
            assert (info.width, info.height, info.fps) == (48, 32, 6.0)
            assert _frames(outs[group] / f"{i}.mp4").shape == (9, 32, 48, 3)
        doc = json.loads((outs[group] / "prompts.json").read_text())
        assert doc == {
            "group": group,
            "prompts": lines,
            "seeds": [11, 12],
            "model": family,
            "backend": "diffusers",
            "checkpoint": "baseline",
            "weights": "pretrained",
            "num_frames": 9,
            "height": 32,
            "width": 48,
            "fps": 6.0,
            "settings": {"num_inference_steps": 2, "guidance_scale": 6.0, "negative_prompt": ""},
        }
    a0, a1 = _frames(outs["A"] / "0.mp4"), _frames(outs["A"] / "1.mp4")
    assert a0.std() > 1.0  # not a blank video
    # the same prompt at the same index has the same seed: the same video in every group (paired)
    assert _same(a0, _frames(outs["B"] / "0.mp4"))
    assert not _same(a0, a1)
    # a rerun from scratch makes the same videos; another seed makes other ones
    again = _generate(tmp_path, "run2", family, s)
    assert _same(_frames(again["A"] / "1.mp4"), a1)
    # video i has seed + i: "a cat" at index 0 with seed 12 is the video of index 1 with seed 11
    other = _generate(tmp_path, "run3", family, s, seed=12, groups={"A": ["a cat", "a dog on a beach"]})
    assert json.loads((other["A"] / "prompts.json").read_text())["seeds"] == [12, 13]
    assert _same(_frames(other["A"] / "0.mp4"), a1)
    assert not _same(_frames(other["A"] / "1.mp4"), a0)


@pytest.mark.parametrize("family", ["cogvideox", "easyanimate"])
def test_pipeline_frames_are_bit_exact_across_loads(tiny_models: dict[str, Path], family: str) -> None:
    from tav_pipeline.backends.diffusers.generate import DiffusersRun, call_arguments, load_pipeline

    run = DiffusersRun.for_baseline(BaselineModel.from_dict(family, spec(tiny_models[family])), seed=5)
    frames = []
    for _ in range(2):
        pipe = load_pipeline(run)
        shared = call_arguments(pipe, run)
        with torch.no_grad():
            frames.append(pipe(prompt="a cat", generator=torch.Generator().manual_seed(5), **shared).frames[0])
    assert frames[0].shape == (9, 32, 48, 3)
    assert np.array_equal(frames[0], frames[1])


def test_call_kwargs_reach_the_pipeline(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    prompts = _prompts(tmp_path / "prompts", {"C": ["Previous scene: a dog; Next scene: a cat"]})
    videos = {}
    for dynamic in (False, True):
        out = {"C": tmp_path / str(dynamic) / "C"}
        s = spec(tiny_models["cogvideox"], call_kwargs={"use_dynamic_cfg": dynamic})
        generate_baseline_step(s, "cogvideox", prompts, out, 3, threads=1)
        videos[dynamic] = _frames(out["C"] / "0.mp4")
        settings = json.loads((out["C"] / "prompts.json").read_text())["settings"]
        assert settings["use_dynamic_cfg"] is dynamic
    assert not _same(videos[False], videos[True])


def test_pipeline_errors_name_the_config_key(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    prompts = _prompts(tmp_path / "prompts", {"A": ["a dog"]})
    out = {"A": tmp_path / "out" / "A"}
    # EasyAnimate's __call__ has no use_dynamic_cfg (a CogVideoX argument): refused, not dropped
    with pytest.raises(ConfigError, match=r"generate\.baselines\.easyanimate\.call_kwargs\.use_dynamic_cfg"):
        generate_baseline_step(
            spec(tiny_models["easyanimate"], call_kwargs={"use_dynamic_cfg": True}), "easyanimate", prompts, out, 0
        )
    # 10 frames are not 4k+1: the pipeline makes 9, which is refused rather than recorded as 10
    with pytest.raises(ConfigError, match=r"generate\.baselines\.cogvideox\.num_frames.*made 9 frames"):
        generate_baseline_step(spec(tiny_models["cogvideox"], num_frames=10), "cogvideox", prompts, out, 0)


def test_missing_folder_names_the_fetch_rule(tmp_path: Path) -> None:
    missing = tmp_path / "resources" / "diffusers" / "EasyAnimateV5.1-7b-zh-diffusers"
    prompts = _prompts(tmp_path / "prompts", {"A": ["a dog"]})
    with pytest.raises(MissingAssetError, match="fetch_baseline_model") as err:
        generate_baseline_step(spec(missing), "easyanimate", prompts, {"A": tmp_path / "out" / "A"}, 0)
    assert str(missing) in err.value.path
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"num_steps": 2}, "num_steps"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"num_frames": 0}, "num_frames"),
        ({"height": 30}, "height"),
        ({"fps": "8"}, "fps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"call_kwargs": {"num_frames": 17}}, "call_kwargs.num_frames"),
        ({"call_kwargs": ["use_dynamic_cfg"]}, "call_kwargs"),
    ],
)
def test_bad_spec_is_a_config_error(tmp_path: Path, over: dict[str, Any], key: str) -> None:
    s = spec(tmp_path / "never_read", **over)
    with pytest.raises(ConfigError) as err:
        generate_baseline_step(s, "cogvideox", {"A": tmp_path / "A.txt"}, {"A": tmp_path / "A"}, 0)
    assert err.value.key == f"generate.baselines.cogvideox.{key}"


def test_a_spec_missing_a_key_is_refused() -> None:
    s = spec("x/y/z")
    del s["revision"]
    with pytest.raises(ConfigError) as err:
        BaselineModel.from_dict("easyanimate", s)
    assert err.value.key == "generate.baselines.easyanimate.revision"


def test_generate_section_types_its_baselines() -> None:
    gen = GenerateConfig.from_dict(
        {"baselines": {"cogvideox": spec("r/d/CogVideoX-2b", call_kwargs={"use_dynamic_cfg": False})}}
    )
    b = gen.baselines["cogvideox"]
    assert (b.name, b.pretrained, b.call_kwargs) == ("cogvideox", "r/d/CogVideoX-2b", {"use_dynamic_cfg": False})
    assert BaselineModel.from_dict("cogvideox", b.to_dict()) == b
    assert GenerateConfig.from_dict({}).baselines == {}
    with pytest.raises(ConfigError) as err:
        GenerateConfig.from_dict({"baselines": {"a/b": spec("x/y/z")}})
    assert err.value.key == "generate.baselines.a/b"


def test_fetch_offline_keeps_what_is_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    folder = tmp_path / "CogVideoX-2b"
    folder.mkdir()
    (folder / "README.md").write_text("placed by hand\n")
    s = spec(folder, hub_id="THUDM/CogVideoX-2b")
    with pytest.raises(MissingAssetError, match="fetch_baseline_model") as err:
        fetch_baseline_step(s, "cogvideox", folder)
    assert err.value.path == str(folder) and "THUDM/CogVideoX-2b@main" in str(err.value)
    assert (folder / "README.md").read_text() == "placed by hand\n"
    with pytest.raises(MissingAssetError, match=r"hub_id is empty.*by hand"):
        fetch_baseline_step(spec(folder), "cogvideox", folder)
    assert (folder / "README.md").is_file()
