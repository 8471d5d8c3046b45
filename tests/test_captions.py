"""Keyframe choice, the BLIP captioner (on a tiny random BLIP) and captions.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tav_pipeline import captions as cap
from tav_pipeline.captioner import CaptionConfig, Captioner, caption_images, fetch_model, load_captioner, model_label
from tav_pipeline.captions import caption_clips, partial_path, records_from_keyframes
from tav_pipeline.errors import BadVideoError, ConfigError, MissingAssetError
from tav_pipeline.keyframes import KeyframeConfig, choose_keyframes, extract_keyframes
from tav_pipeline.video import iter_frames

FPS = 10
SCENE_SECONDS = 2
SHORT = {"max_new_tokens": 8, "min_new_tokens": 3}
"""Shorter captions than the pinned 30 tokens keep the tests fast; the code path is the same."""


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def two_scene_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A lavfi clip: 2 s of red then 2 s of blue at 10 fps (cut at frame 20), with its sidecar."""
    out = tmp_path_factory.mktemp("clip")
    path = out / "vid_a.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"color=c=red:s=64x48:r={FPS}:d={SCENE_SECONDS}",
        "-f", "lavfi", "-i", f"color=c=blue:s=64x48:r={FPS}:d={SCENE_SECONDS}",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
    )
    frames = 2 * SCENE_SECONDS * FPS
    sidecar = {
        "video": "vid_a", "source": "src.mp4", "clip": str(path), "status": "ok", "start": 3.0, "end": 7.0,
        "duration": frames / FPS, "fps": float(FPS), "frames": frames, "cut_time": 5.0,
        "cut_time_in_clip": 2.0, "cut_frame_in_clip": SCENE_SECONDS * FPS, "policy": "paper",
        "shortfall_before": 0.0, "shortfall_after": 0.0,
    }
    return path, sidecar


@pytest.fixture(scope="module")
def real_frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """Five decoded frames of lavfi test patterns (testsrc2, SMPTE bars, Mandelbrot)."""
    out = tmp_path_factory.mktemp("patterns")
    frames: list[np.ndarray] = []
    for i, source in enumerate(("testsrc2=s=96x64:r=5:d=1", "smptebars=s=96x64:r=5:d=1", "mandelbrot=s=96x64:r=5")):
        path = out / f"{i}.mp4"
        _ffmpeg("-f", "lavfi", "-i", source, "-frames:v", "5", "-pix_fmt", "yuv420p", str(path))
        decoded = [f.image for f in iter_frames(path, pixel_format="rgb24")]
        frames.extend(decoded[:2] if i < 2 else decoded[:1])
    return frames


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tav_pipeline.tiny_models import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("blip") / "tiny-blip", seed=0)


@pytest.fixture(scope="module")
def captioner(tiny_blip: Path) -> Captioner:
    return load_captioner(CaptionConfig(model=str(tiny_blip), batch_size=4, **SHORT))


# ---------------------------------------------------------------------------------------------- keyframes


def test_keyframes_stay_margin_clear_of_cut_and_ends() -> None:
    cfg = KeyframeConfig(position=0.5, margin=0.5)
    for frames, cut, fps in ((100, 50, 10.0), (300, 137, 30.0), (250, 40, 25.0), (120, 110, 24.0)):
        k1, k2 = choose_keyframes(frames, fps, cut, cfg)
        assert 0 <= k1.frame < cut <= k2.frame < frames
        for k, (a, b) in ((k1, (0, cut)), (k2, (cut, frames))):
            if (b - a) / fps >= 2 * cfg.margin:
                assert not k.fallback
                assert k.frame / fps - a / fps >= cfg.margin - 1e-9
                assert b / fps - k.frame / fps >= cfg.margin - 1e-9
            else:
                assert k.fallback and k.frame == a + (b - a - 1) // 2


def test_position_moves_the_keyframe_but_the_margin_clamps_it() -> None:
    k1, k2 = choose_keyframes(100, 10.0, 50, KeyframeConfig(position=0.0, margin=0.5))
    assert (k1.frame, k2.frame) == (5, 55)
    k1, k2 = choose_keyframes(100, 10.0, 50, KeyframeConfig(position=1.0, margin=0.5))
    assert (k1.frame, k2.frame) == (45, 95)
    k1, k2 = choose_keyframes(100, 10.0, 50, KeyframeConfig(position=0.5, margin=0.5))
    assert (k1.frame, k2.frame) == (25, 75)
    assert k1.time == 2.5


def test_short_scene_falls_back_to_its_middle_and_empty_scene_raises() -> None:
    k1, k2 = choose_keyframes(100, 10.0, 6, KeyframeConfig(margin=0.5))
    assert k1.fallback and k1.frame == 2
    assert not k2.fallback
    for cut in (0, 100, 120):
        with pytest.raises(BadVideoError) as err:
            choose_keyframes(100, 10.0, cut, KeyframeConfig())
        assert err.value.reason == "scene_too_short"


def test_keyframe_config_validation() -> None:
    assert KeyframeConfig.from_dict({"position": 0.25}).position == 0.25
    with pytest.raises(ConfigError):
        KeyframeConfig.from_dict({"positon": 0.5})
    with pytest.raises(ConfigError):
        KeyframeConfig(position=1.5)
    with pytest.raises(ConfigError):
        KeyframeConfig(margin=-1)


def _mean_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return image.reshape(-1, 3).mean(axis=0)


def test_extract_keyframes_takes_each_scene_colour(two_scene_clip: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    clip, sidecar = two_scene_clip
    sidecar_path = tmp_path / "vid_a.json"
    sidecar_path.write_text(json.dumps(sidecar))
    cfg = KeyframeConfig(position=0.9, margin=0.5)  # pushed toward the cut: the margin must hold it back
    record = extract_keyframes(clip, sidecar_path, cfg, tmp_path / "k/s1.png", tmp_path / "k/s2.png", tmp_path / "k.json")
    cut = sidecar["cut_frame_in_clip"]
    s1, s2 = record["scene1"], record["scene2"]
    assert s1["frame"] < cut <= s2["frame"]
    assert (cut - s1["frame"]) / FPS >= cfg.margin and (s2["frame"] - cut) / FPS >= cfg.margin
    assert (sidecar["frames"] - s2["frame"]) / FPS >= cfg.margin
    red, blue = _mean_bgr(tmp_path / "k/s1.png"), _mean_bgr(tmp_path / "k/s2.png")
    assert red[2] > 200 and red[0] < 60, red
    assert blue[0] > 200 and blue[2] < 60, blue
    on_disk = json.loads((tmp_path / "k.json").read_text())
    assert on_disk == record
    assert on_disk["video"] == "vid_a" and on_disk["scene1"]["png"].endswith("s1.png")


def test_extract_keyframes_reports_the_clip_for_an_empty_scene(two_scene_clip: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    clip, sidecar = two_scene_clip
    bad = {**sidecar, "cut_frame_in_clip": sidecar["frames"]}
    with pytest.raises(BadVideoError) as err:
        extract_keyframes(clip, bad, KeyframeConfig(), tmp_path / "a.png", tmp_path / "b.png", tmp_path / "k.json")
    assert err.value.reason == "scene_too_short" and err.value.path == str(clip)
    assert not (tmp_path / "a.png").exists()


# ---------------------------------------------------------------------------------------------- config


def test_caption_config_defaults_and_keys() -> None:
    cfg = CaptionConfig()
    assert (cfg.model, cfg.hub_id) == ("resources/models/blip-image-captioning-large", "Salesforce/blip-image-captioning-large")
    assert cfg.decoding() == {"num_beams": 3, "max_new_tokens": 30, "min_new_tokens": 5, "repetition_penalty": 1.0, "do_sample": False}
    # The workflow's captions section (config.yaml) must be accepted as is.
    section = {
        "model": "resources/models/blip-image-captioning-large", "hub_id": "Salesforce/blip-image-captioning-large",
        "revision": "main", "batch_size": 8, "device": "auto", "dtype": "float32", "prompt": "",
        "num_beams": 3, "max_new_tokens": 30, "min_new_tokens": 5, "repetition_penalty": 1.0,
    }
    assert CaptionConfig.from_dict(section).is_local
    assert not CaptionConfig(model="Salesforce/blip-image-captioning-base").is_local
    with pytest.raises(ConfigError):
        CaptionConfig.from_dict({"num_beam": 3})
    with pytest.raises(ConfigError):
        CaptionConfig(dtype="float8")
    with pytest.raises(ConfigError):
        CaptionConfig(min_new_tokens=40)
    assert CaptionConfig(prompt="a picture of").settings_key() != CaptionConfig().settings_key()


# ---------------------------------------------------------------------------------------------- loading


def test_missing_folder_names_the_fetch_rule(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "blip-image-captioning-large"
    with pytest.raises(MissingAssetError) as err:
        load_captioner(CaptionConfig(model=str(missing)))
    assert err.value.rule == "fetch_blip"
    assert str(missing) in str(err.value) and "fetch_blip" in str(err.value)


@pytest.mark.models
def test_uncached_hub_id_offline_names_the_fetch_rule() -> None:
    pytest.importorskip("transformers")
    cfg = CaptionConfig(model="tav-pipeline-tests/no-such-blip", local_files_only=True)
    assert not cfg.is_local
    with pytest.raises(MissingAssetError) as err:
        load_captioner(cfg)
    assert err.value.rule == "fetch_blip" and "tav-pipeline-tests/no-such-blip" in str(err.value)


def _fake_hub(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]], fail: bool = False) -> None:
    class Api:
        def model_info(self, repo_id: str, revision: str | None = None) -> Any:
            if fail:
                raise ConnectionError("no network")
            siblings = [types.SimpleNamespace(rfilename=n) for n in ("config.json", "model.safetensors", "pytorch_model.bin")]
            return types.SimpleNamespace(sha="0123abc", siblings=siblings)

    def snapshot_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        Path(kwargs["local_dir"], "config.json").write_text("{}")
        return str(kwargs["local_dir"])

    fake = types.ModuleType("huggingface_hub")
    fake.HfApi = Api  # type: ignore[attr-defined]
    fake.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)


def test_fetch_model_records_the_commit_and_skips_bin_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _fake_hub(monkeypatch, calls)
    out = fetch_model("Salesforce/blip-image-captioning-large", "main", tmp_path / "blip")
    assert calls[0]["repo_id"] == "Salesforce/blip-image-captioning-large"
    assert calls[0]["revision"] == "0123abc"
    assert "*.safetensors" in calls[0]["allow_patterns"] and "*.bin" not in calls[0]["allow_patterns"]
    record = json.loads((out / "tav_fetch.json").read_text())
    assert record == {"repo_id": "Salesforce/blip-image-captioning-large", "revision": "main", "commit": "0123abc"}
    assert model_label(CaptionConfig(model=str(out))) == "Salesforce/blip-image-captioning-large@0123abc"


def test_fetch_model_without_network_raises_missing_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, [], fail=True)
    with pytest.raises(MissingAssetError) as err:
        fetch_model("Salesforce/blip-image-captioning-large", None, tmp_path / "blip")
    assert err.value.rule == "fetch_blip"


# ---------------------------------------------------------------------------------------------- captioning


@pytest.mark.models
def test_captions_are_deterministic_strings(tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray]) -> None:
    cfg = CaptionConfig(model=str(tiny_blip), batch_size=4, **SHORT)
    first = caption_images(real_frames, captioner, cfg, progress=False)
    assert len(first) == len(real_frames)
    assert all(isinstance(c, str) and c and c == " ".join(c.split()) for c in first)
    again = caption_images(real_frames, load_captioner(cfg), cfg, progress=False)
    assert again == first
    assert len(set(first)) > 1  # different pictures, different captions


@pytest.mark.models
def test_batched_equals_one_by_one(tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray]) -> None:
    batched = caption_images(real_frames, captioner, CaptionConfig(model=str(tiny_blip), batch_size=3, **SHORT), progress=False)
    single_cfg = CaptionConfig(model=str(tiny_blip), batch_size=1, **SHORT)
    single = [caption_images([im], captioner, single_cfg, progress=False)[0] for im in real_frames]
    assert batched == single


@pytest.mark.models
def test_prompt_prefix_is_stripped(tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray]) -> None:
    import torch

    prompt = "a picture of"
    cfg = CaptionConfig(model=str(tiny_blip), prompt=prompt, **SHORT)
    got = caption_images(real_frames[:2], captioner, cfg, progress=False)
    inputs = captioner.processor(images=real_frames[:2], text=[prompt] * 2, return_tensors="pt")
    with torch.inference_mode():
        full = captioner.model.generate(**inputs, **cfg.decoding())
    decoded = captioner.processor.batch_decode(full, skip_special_tokens=True)
    for caption, whole in zip(got, decoded):
        assert " ".join(whole.split()) == f"{prompt} {caption}"
        assert not caption.startswith(prompt)


@pytest.mark.models
def test_image_files_and_arrays_give_the_same_caption(tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray], tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), cv2.cvtColor(real_frames[0], cv2.COLOR_RGB2BGR))
    cfg = CaptionConfig(model=str(tiny_blip), **SHORT)
    assert caption_images([png], captioner, cfg, progress=False) == caption_images([real_frames[0]], captioner, cfg, progress=False)


def _keyframe_records(tmp_path: Path, frames: list[np.ndarray], videos: list[str]) -> list[dict[str, Any]]:
    records = []
    for i, video in enumerate(videos):
        pngs = []
        for scene in (1, 2):
            png = tmp_path / "keyframes" / video / f"scene{scene}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            image = frames[(2 * i + scene - 1) % len(frames)]
            cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            pngs.append(str(png))
        records.append({"video": video, "scene1_png": pngs[0], "scene2_png": pngs[1], "clip": f"{video}.mp4"})
    return records


@pytest.mark.models
def test_caption_clips_writes_sorted_lines(tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray], tmp_path: Path) -> None:
    records = _keyframe_records(tmp_path, real_frames, ["vid_b", "vid_a", "vid_c"])
    cfg = CaptionConfig(model=str(tiny_blip), batch_size=4, **SHORT)
    out = tmp_path / "captions.jsonl"
    rows = caption_clips(records, cfg, out, captioner=captioner, progress=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == rows
    assert [(r["video"], r["scene"]) for r in lines] == [(v, s) for v in ("vid_a", "vid_b", "vid_c") for s in (1, 2)]
    assert all({"video", "scene", "keyframe", "caption", "model"} <= set(r) for r in lines)
    assert {r["model"] for r in lines} == {str(tiny_blip)}
    by_key = {(r["video"], r["scene"]): r for r in lines}
    assert by_key[("vid_a", 2)]["keyframe"] == records[1]["scene2_png"]
    direct = caption_images([records[1]["scene2_png"]], captioner, cfg, progress=False)[0]
    assert by_key[("vid_a", 2)]["caption"] == direct
    assert not partial_path(out).exists()


@pytest.mark.models
def test_caption_clips_resumes_from_the_partial_file(
    tiny_blip: Path, captioner: Captioner, real_frames: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _keyframe_records(tmp_path, real_frames, ["v1", "v2", "v3"])
    cfg = CaptionConfig(model=str(tiny_blip), batch_size=2, **SHORT)
    out = tmp_path / "captions.jsonl"
    complete = caption_clips(records, cfg, out, captioner=captioner, progress=False)

    # Simulate an interruption: three finished lines and half of a fourth in the partial file.
    finished = out.read_text().splitlines()
    partial_path(out).write_text("\n".join(finished[:3]) + "\n" + finished[3][: len(finished[3]) // 2])
    out.unlink()
    # A changed keyframe must not reuse its old caption.
    changed = Path(records[0]["scene1_png"])
    cv2.imwrite(str(changed), cv2.cvtColor(real_frames[-1], cv2.COLOR_RGB2BGR))

    captioned: list[Any] = []
    real = cap.caption_images

    def counting(images: Any, *args: Any, **kwargs: Any) -> list[str]:
        captioned.extend(images)
        return real(images, *args, **kwargs)

    monkeypatch.setattr(cap, "caption_images", counting)
    resumed = caption_clips(records, cfg, out, captioner=captioner, progress=False)
    # v1/1 (changed), v2/2 (cut short), v3/1, v3/2 are redone; v1/2 and v2/1 are reused.
    assert sorted(str(p) for p in captioned) == sorted(
        [records[0]["scene1_png"], records[1]["scene2_png"], records[2]["scene1_png"], records[2]["scene2_png"]]
    )
    assert [(r["video"], r["scene"]) for r in resumed] == [(r["video"], r["scene"]) for r in complete]
    for new, old in zip(resumed[1:], complete[1:]):
        assert new["caption"] == old["caption"]
    assert resumed[0]["keyframe_sha1"] != complete[0]["keyframe_sha1"]
    assert not partial_path(out).exists()


def test_caption_clips_with_nothing_left_does_not_load_the_model(tmp_path: Path, real_frames: list[np.ndarray]) -> None:
    records = _keyframe_records(tmp_path, real_frames, ["v1"])
    cfg = CaptionConfig(model=str(tmp_path / "no-model-here"))
    out = tmp_path / "captions.jsonl"
    rows = []
    for scene in (1, 2):
        png = records[0][f"scene{scene}_png"]
        rows.append({"video": "v1", "scene": scene, "keyframe": png, "caption": f"caption {scene}", "model": model_label(cfg),
                     "keyframe_sha1": cap._sha1_file(png), "settings": cfg.settings_key()})
    partial_path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["caption"] for r in caption_clips(records, cfg, out, progress=False)] == ["caption 1", "caption 2"]
    # ...whereas any pending keyframe needs the (missing) model.
    with pytest.raises(MissingAssetError):
        caption_clips(_keyframe_records(tmp_path, real_frames, ["v1", "v2"]), cfg, out, progress=False)


def test_caption_clips_rejects_missing_keyframes(tmp_path: Path) -> None:
    with pytest.raises(BadVideoError) as err:
        caption_clips([{"video": "v", "scene1_png": str(tmp_path / "a.png"), "scene2_png": str(tmp_path / "b.png")}],
                      CaptionConfig(model=str(tmp_path)), tmp_path / "c.jsonl", progress=False)
    assert err.value.reason == "missing_file"


def test_records_from_keyframes_keeps_validated_clips(two_scene_clip: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    clip, sidecar = two_scene_clip
    kf = extract_keyframes(clip, sidecar, KeyframeConfig(), tmp_path / "1.png", tmp_path / "2.png", tmp_path / "vid_a.json")
    other = {**kf, "video": "vid_b"}
    records = records_from_keyframes([tmp_path / "vid_a.json", other])
    assert [r["video"] for r in records] == ["vid_a", "vid_b"]
    assert records[0]["scene1_png"] == str(tmp_path / "1.png") and records[0]["scene2_png"] == str(tmp_path / "2.png")
    checks = [{"video": "vid_a", "passed": False}, {"video": "vid_b", "passed": True}]
    assert [r["video"] for r in records_from_keyframes([kf, other], checks)] == ["vid_b"]


def test_extract_keyframes_step_writes_a_reject_instead_of_raising(
    two_scene_clip: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from tav_pipeline import steps
    from tav_pipeline.validation import ValidationRecord

    clip, sidecar = two_scene_clip
    sidecar_json = tmp_path / "clip.json"
    sidecar_json.write_text(json.dumps(sidecar))
    passed, failed = tmp_path / "passed.json", tmp_path / "failed.json"
    ValidationRecord("vid_a", str(clip), "paper", True, 80.0, 12, 50.0, True).write(passed)
    ValidationRecord("vid_a", str(clip), "paper", False, 30.0, 12, 50.0, False, reason="below_threshold").write(failed)
    good = steps.extract_keyframes_step(clip, sidecar_json, passed, {}, tmp_path / "ok", tmp_path / "ok.json")
    assert good["status"] == "ok" and sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["scene1.png", "scene2.png"]

    # a clip that failed validation gets no keyframe
    skipped = steps.extract_keyframes_step(clip, sidecar_json, failed, {}, tmp_path / "skip", tmp_path / "skip.json")
    assert skipped["status"] == "rejected" and skipped["reason"] == "validation_failed"
    assert "below_threshold" in skipped["detail"] and list((tmp_path / "skip").iterdir()) == []

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:800])  # the clip no longer decodes
    bad = steps.extract_keyframes_step(broken, sidecar_json, passed, {}, tmp_path / "bad", tmp_path / "bad.json")
    assert bad["status"] == "rejected" and bad["reason"] == "unreadable"
    assert json.loads((tmp_path / "bad.json").read_text()) == bad
    assert list((tmp_path / "bad").iterdir()) == []
    # a rejected keyframe record is never captioned
    assert [r["video"] for r in records_from_keyframes([tmp_path / "ok.json", {**bad, "video": "vid_z"}])] == ["vid_a"]
