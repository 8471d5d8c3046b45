"""Which frames train (Open-Sora-Plan's resampling and crop), the latent cache, and the data stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _train_data import tiny_train  # noqa: E402

from tav_pipeline.backends.diffusers.latents import (  # noqa: E402
    CachedClips,
    StreamSampler,
    center_crop_resize,
    plan_clips,
    read_index,
)
from tav_pipeline.errors import ConfigError  # noqa: E402
from tav_pipeline.train.config import TrainConfig  # noqa: E402
from tav_pipeline.train.frames import resampled_indices, window_length  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resampling_and_window_length_follow_open_sora_plan() -> None:
    assert resampled_indices(48, 24.0, 8.0)[:4] == [0, 3, 6, 9] and len(resampled_indices(48, 24.0, 8.0)) == 16
    assert resampled_indices(10, 8.05, 8.0) == list(range(10))  # rates within 0.1: every frame
    assert resampled_indices(30, 29.97, 8.0)[:3] == [0, 3, 7]
    assert resampled_indices(48, 24.0, 8.0, sample_rate=2)[:3] == [0, 6, 12]
    assert window_length(80, 33, 29) == 33
    assert window_length(32, 33, 29) == 29  # longest 4k+1 the clip has
    assert window_length(28, 33, 29) == 0  # too short for a 4x temporal VAE at 29+
    # an 8x temporal VAE (Open-Sora-Plan's WFVAEModel_D32_8x8x8): 8k+1 frames
    assert (window_length(40, 93, 29, stride_t=8), window_length(32, 93, 29, stride_t=8)) == (33, 0)


def test_plan_clips_drops_short_clips_only_when_asked(tav_json: Path) -> None:
    items = [i for i in json.loads(tav_json.read_text())["items"] if i["split"] == "train"]
    items[0] = dict(items[0], frames=12)  # 1 s at 12 fps -> 8 frames at 8 fps
    keep = TrainConfig.from_dict({"num_frames": 33})
    usable, rejected = plan_clips(items, keep)
    assert [r["reason"] for r in rejected] == ["too_short"]  # 8 < 29
    assert all(p.length == 29 for p in usable)  # 4 s at 8 fps = 32 frames -> 29
    assert usable[0].cut_position == 16  # cut at 2 s = clip frame 24 -> resampled index 16
    drop = TrainConfig.from_dict({"num_frames": 33, "drop_short_ratio": 1.0})
    assert plan_clips(items, drop)[0] == []


def test_center_crop_resize_matches_the_target_and_range() -> None:
    frames = torch.zeros(3, 3, 48, 64, dtype=torch.uint8)
    frames[..., :, 8:56] = 255  # the centre 48x48 square is white
    out = center_crop_resize(frames, 32, 32)
    assert out.shape == (3, 3, 32, 32)
    assert float(out.min()) == pytest.approx(1.0) and float(out.max()) == pytest.approx(1.0)


def test_cache_holds_every_train_clip_and_checks_its_settings(latents: Path, tiny_model: Path) -> None:
    index = json.loads((latents / "index.json").read_text())
    assert len(index["items"]) == 4 and index["sequence_length"] == 32
    for item in index["items"]:
        assert 1 <= len(item["windows"]) <= 2
        assert (latents / item["text"]).is_file()
    from safetensors.torch import load_file

    params = load_file(str(latents / index["items"][0]["windows"][0]["file"]))["params"]
    assert tuple(params.shape) == (3, 8, 4, 4)  # 9 frames -> 3 latent frames, 2 x 4 channels, 32/8
    empty = load_file(str(latents / index["empty"]))["embeds"]
    assert tuple(empty.shape) == (32, 32)
    cfg = TrainConfig.from_dict(tiny_train(tiny_model))
    assert read_index(latents, cfg, str(tiny_model))["family"] == "CogVideoXPipeline"
    with pytest.raises(ConfigError, match="rerun cache_latents"):
        read_index(latents, TrainConfig.from_dict(tiny_train(tiny_model, height=64, width=64)), str(tiny_model))


def test_stream_is_a_function_of_seed_and_position(latents: Path, tiny_model: Path) -> None:
    index = read_index(latents, TrainConfig.from_dict(tiny_train(tiny_model)), str(tiny_model))
    a = CachedClips(latents, index, seed=3, text_drop_prob=0.5)
    b = CachedClips(latents, index, seed=3, text_drop_prob=0.5)
    first_pass = sorted(a[p]["clip"] for p in range(4))
    assert first_pass == [0, 1, 2, 3]  # one pass sees every clip once
    for p in (9, 2, 5):
        x, y = a[p], b[p]
        assert x["clip"] == y["clip"] and x["dropped"] == y["dropped"] and torch.equal(x["params"], y["params"])
    drops = [a[p]["dropped"] for p in range(200)]
    assert 0.35 < sum(drops) / 200 < 0.65
    assert list(StreamSampler(2, 4, batch_size=2, rank=1, world=2)) == [10, 11, 14, 15]
