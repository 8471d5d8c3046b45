"""VBench's four dimensions through vbench 0.1.5's own code, on CPU, with stand-in weights.

The stand-in weights are built once and kept in pytest's cache folder (keyed by a hash of the
builder's source), so only the first run pays for the 1.7 GB ViCLIP checkpoint. vbench reads
``VBENCH_CACHE_DIR`` once per process: every test here goes through the ``standin`` fixture first.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from _generated import write_group

# find_spec, not importorskip: importing vbench would fix VBENCH_CACHE_DIR before the fixture sets it
for _name in ("vbench", "clip", "pyiqa", "decord", "easydict"):
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_name} is not installed (see envs/vbench.yaml)", allow_module_level=True)

import torch  # noqa: E402
from _vbench_trace import trace_dynamic_degree  # noqa: E402

from tav_pipeline.errors import ConfigError, MissingAssetError  # noqa: E402
from tav_pipeline.metrics import standin_weights as sw  # noqa: E402
from tav_pipeline.metrics import vbench as vb  # noqa: E402
from tav_pipeline.metrics import vbench_weights as vw  # noqa: E402
from tav_pipeline.metrics.segments import read_generated  # noqa: E402

pytestmark = pytest.mark.models


@pytest.fixture(scope="session")
def standin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in weights for all four dimensions (RAFT flow bias 0: zero flow)."""
    cache = getattr(request.config, "cache", None)
    key = f"tav-vbench-standin-{sw.builder_fingerprint()}"
    root = Path(cache.mkdir(key)) if cache is not None else tmp_path_factory.mktemp(key)
    for stale in root.parent.glob("tav-vbench-standin-*"):
        if stale != root:  # built by an older builder: 1.7 GB each
            shutil.rmtree(stale, ignore_errors=True)
    marker = root / vw.STANDIN_MARKER
    if not (marker.exists() and json.loads(marker.read_text()).get("complete")):
        sw.build_standin_weights(root)
    vb.import_vbench(root)
    return root


FRAMES = 9
"""Frames per test video (8 fps): RAFT sees 8 pairs and needs round(4 * 9 / 16) = 2 of them to move."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """128 px (RAFT's minimum), 9 frames at 8 fps: a static video (one frame repeated) and a
    moving one."""
    root = tmp_path_factory.mktemp("generated")
    write_group(root, "m", "baseline", "B", [[], []], frames=FRAMES, moving=[False, True], prompts=["a still red pattern", "a drifting red pattern"])
    return root


def _frames(path: Path) -> np.ndarray:
    from tav_pipeline.video import iter_frames

    return np.stack([f.image for f in iter_frames(path, pixel_format="rgb24")])


def test_standin_files_have_the_real_formats(standin: Path) -> None:
    import clip
    from easydict import EasyDict
    from pyiqa.archs.musiq_arch import MUSIQ
    from vbench.third_party.RAFT.core.raft import RAFT

    # CLIP: a TorchScript archive with encode_image; clip.load rebuilds it with a 768-d output
    archive = torch.jit.load(str(standin / vw.CLIP_VIT_L14), map_location="cpu")
    assert isinstance(archive, torch.jit.ScriptModule) and hasattr(archive, "encode_image")
    assert {"input_resolution", "context_length", "vocab_size"} <= set(archive.state_dict())
    model, _ = clip.load(str(standin / vw.CLIP_VIT_L14), device="cpu")
    assert model.encode_image(torch.zeros(1, 3, 224, 224)).shape == (1, 768)
    # aesthetic head: nn.Linear(768, 1)
    head = torch.load(standin / vw.AESTHETIC_HEAD)
    assert {k: tuple(v.shape) for k, v in head.items()} == {"weight": (1, 768), "bias": (1,)}
    # RAFT: DataParallel prefixes, loads strictly into vbench's full-size RAFT
    raft_sd = torch.load(standin / vw.RAFT_THINGS)
    assert all(k.startswith("module.") for k in raft_sd)
    RAFT(EasyDict(small=False, mixed_precision=False, alternate_corr=False)).load_state_dict({k[7:]: v for k, v in raft_sd.items()})
    # MUSIQ: pyiqa loads it strictly with vbench's constructor call
    MUSIQ(pretrained_model_path=str(standin / vw.MUSIQ_SPAQ))
    # ViCLIP: {"model": state_dict}, every tensor finite (ViCLIP leaves some torch.empty)
    ckpt = torch.load(standin / vw.VICLIP, map_location="cpu", mmap=True)
    assert set(ckpt) == {"model"}
    assert "text_encoder.positional_embedding" in ckpt["model"]
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert sum(v.numel() for v in ckpt["model"].values()) > 400e6  # full size, as vbench builds it
    assert json.loads((standin / vw.STANDIN_MARKER).read_text())["complete"] is True


def test_all_four_dimensions_through_vbench_evaluate(standin: Path, videos: Path, tmp_path: Path) -> None:
    """The real VBench(...).evaluate(mode='custom_input', local=True) on CPU, one static video."""
    import clip

    pj = videos / "m/baseline/B/prompts.json"
    config = vb.VBenchConfig(cache_dir=str(standin), weights="standin", device="cpu", max_videos=1)
    result = vb.evaluate_videos(read_generated(pj, model="m", checkpoint="baseline"), config, tmp_path / "work", threads=2)
    row = result.per_video.iloc[0]
    assert len(result.per_video) == 1 and row["index"] == 0 and row["prompt"] == "a still red pattern"
    assert result.meta["weights"] == "standin" and result.meta["scored_videos"] == 1 and result.meta["videos"] == 2
    assert result.meta["dynamic_degree_undefined"] == []
    # dynamic degree: zero flow from the stand-in RAFT -> static
    assert row["dynamic_degree"] == 0.0 and result.overall["dynamic_degree"] == 0.0
    # imaging quality: per video on MUSIQ's 0-100 scale, overall / 100
    assert 1.0 < row["imaging_quality"] < 100.0
    assert result.overall["imaging_quality"] == pytest.approx(row["imaging_quality"] / 100)
    # overall consistency: a cosine similarity
    assert -1.0 <= row["overall_consistency"] <= 1.0 and result.overall["overall_consistency"] == pytest.approx(row["overall_consistency"])
    # aesthetic quality recomputed by hand: mean over frames of head(normalise(CLIP(frame))) / 10
    model, _ = clip.load(str(standin / vw.CLIP_VIT_L14), device="cpu")
    head = torch.nn.Linear(768, 1)
    head.load_state_dict(torch.load(standin / vw.AESTHETIC_HEAD))
    from vbench.utils import clip_transform

    frames = torch.from_numpy(_frames(videos / "m/baseline/B/0.mp4")).permute(0, 3, 1, 2)
    with torch.no_grad():
        feats = torch.nn.functional.normalize(model.encode_image(clip_transform(224)(frames)).float(), dim=-1)
        expected = float((head(feats).squeeze(-1) / 10).mean())
    assert row["aesthetic_quality"] == pytest.approx(expected, abs=2e-3)
    # vbench's own output files are kept beside the staged video links
    assert (tmp_path / "work/m_baseline_B_eval_results.json").exists()
    assert (tmp_path / "work/videos/0.mp4").is_symlink()


def test_subset_of_dimensions_and_per_video_means(standin: Path, videos: Path, tmp_path: Path) -> None:
    pj = videos / "m/baseline/B/prompts.json"
    config = vb.VBenchConfig(dimensions=("imaging_quality", "aesthetic_quality"), cache_dir=str(standin), weights="standin", device="cpu")
    result = vb.evaluate_videos(read_generated(pj, model="m", checkpoint="baseline"), config, tmp_path / "work")
    assert list(result.per_video.columns[-2:]) == ["aesthetic_quality", "imaging_quality"]
    assert result.meta["dimensions"] == ["aesthetic_quality", "imaging_quality"] and result.meta["scored_videos"] == 2
    assert result.overall["imaging_quality"] == pytest.approx(result.per_video["imaging_quality"].mean() / 100)
    assert result.overall["aesthetic_quality"] == pytest.approx(result.per_video["aesthetic_quality"].mean())
    # different pixels, different scores: the models really look at the frames
    assert result.per_video["imaging_quality"].iloc[0] != pytest.approx(result.per_video["imaging_quality"].iloc[1])
    csv, js = tmp_path / "v.csv", tmp_path / "v.json"
    result.write(csv, js)
    assert json.loads(js.read_text())["overall"]["imaging_quality"] == pytest.approx(result.overall["imaging_quality"])


def test_static_video_dynamic_degree_is_false_with_zero_magnitudes(standin: Path, videos: Path) -> None:
    path = videos / "m/baseline/B/0.mp4"
    trace = trace_dynamic_degree(path, standin / vw.RAFT_THINGS)
    assert trace.frames == FRAMES
    assert trace.magnitudes == [0.0] * (FRAMES - 1)  # zero flow, exactly
    assert trace.threshold == pytest.approx(6.0 * 128 / 256)  # 3 px for 128 px frames
    assert trace.count_needed == 2
    assert trace.moving is False
    # the full vbench path agrees (test_all_four_dimensions_through_vbench_evaluate: 0.0 for this video)


def test_flow_above_threshold_makes_a_video_dynamic(standin: Path, videos: Path, tmp_path: Path) -> None:
    """A stand-in RAFT whose flow is 160 * bias everywhere: 0.025 px -> 4 px > 3 px threshold."""
    from easydict import EasyDict
    from vbench.dynamic_degree import DynamicDegree

    raft = sw.build_raft(tmp_path / "raft.pth", flow_bias=(0.025, 0.0))
    expected = sw.expected_raft_magnitude((0.025, 0.0))
    assert expected == pytest.approx(4.0)
    path = videos / "m/baseline/B/0.mp4"
    trace = trace_dynamic_degree(path, raft)
    assert trace.magnitudes == pytest.approx([expected] * (FRAMES - 1), abs=1e-3)
    assert trace.moving is True
    # vbench's own DynamicDegree.infer reaches the same verdict
    dynamic = DynamicDegree(EasyDict(model=str(raft), small=False, mixed_precision=False, alternate_corr=False), "cpu")
    assert dynamic.infer(str(path)) is True
    # 2.4 px is under the 3 px threshold: static again
    low = trace_dynamic_degree(path, sw.build_raft(tmp_path / "low.pth", flow_bias=(0.0, 0.015)))
    assert low.magnitudes == pytest.approx([2.4] * (FRAMES - 1), abs=1e-3) and low.moving is False


def test_small_frames_make_raft_flow_nan(standin: Path, tmp_path: Path) -> None:
    """Below 128 px RAFT's pyramid collapses and vbench silently calls the video static."""
    pj = write_group(tmp_path, "m", "baseline", "A", [[]], frames=5, size=64)
    trace = trace_dynamic_degree(pj.parent / "0.mp4", standin / vw.RAFT_THINGS)
    assert all(math.isnan(m) for m in trace.magnitudes) and trace.moving is False
    assert vb.raft_flow_undefined(64, 64) and vb.raft_flow_undefined(120, 240)
    assert not vb.raft_flow_undefined(128, 128) and not vb.raft_flow_undefined(124, 300)
    config = vb.VBenchConfig(dimensions=("dynamic_degree",), cache_dir=str(standin), weights="standin", device="cpu")
    result = vb.evaluate_videos(read_generated(pj, model="m", checkpoint="baseline"), config, tmp_path / "work")
    assert result.meta["dynamic_degree_undefined"] == [0]
    assert result.overall["dynamic_degree"] is None and math.isnan(result.per_video.loc[0, "dynamic_degree"])


def test_tiny_videos_skip_only_dynamic_degree(standin: Path, videos: Path, tmp_path: Path) -> None:
    """32 px videos (the demo's) crash RAFT's pyramid inside vbench; the other dimensions still run,
    and a 128 px video in the same group still gets its dynamic degree."""
    pj = write_group(tmp_path / "gen", "m", "baseline", "A", [[], []], frames=5, size=32)
    (pj.parent / "1.mp4").unlink()
    (pj.parent / "1.mp4").symlink_to(videos / "m/baseline/B/0.mp4")
    config = vb.VBenchConfig(dimensions=("dynamic_degree", "imaging_quality"), cache_dir=str(standin), weights="standin", device="cpu")
    result = vb.evaluate_videos(read_generated(pj, model="m", checkpoint="baseline"), config, tmp_path / "work")
    assert result.meta["dynamic_degree_undefined"] == [0]
    assert math.isnan(result.per_video.loc[0, "dynamic_degree"]) and result.per_video.loc[1, "dynamic_degree"] == 0.0
    assert result.overall["dynamic_degree"] == 0.0  # over the one video RAFT can score
    assert result.per_video["imaging_quality"].notna().all()
    assert result.overall["imaging_quality"] == pytest.approx(result.per_video["imaging_quality"].mean() / 100)


def test_missing_weight_names_file_and_rule(standin: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingAssetError) as err:
        vw.check_weights(empty, ["imaging_quality"])
    assert str(empty / vw.MUSIQ_SPAQ) in str(err.value) and "fetch_vbench_weights" in str(err.value)
    config = vb.VBenchConfig(cache_dir=str(empty), weights="standin")
    with pytest.raises(MissingAssetError, match="build_standin_vbench_weights"):
        vw.check_weights(config.cache_dir, config.dimensions, config.rule)
    assert list(empty.iterdir()) == []  # nothing was downloaded


def test_fetch_without_network_is_a_clear_error(standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(vw.WEIGHT_URLS, vw.MUSIQ_SPAQ, "http://127.0.0.1:9/musiq.pth")
    with pytest.raises(MissingAssetError) as err:
        vw.fetch_weights(tmp_path, ["imaging_quality"], timeout=5)
    assert "musiq_spaq_ckpt-358bb6af.pth" in str(err.value) and "127.0.0.1:9" in str(err.value)
    assert not (tmp_path / vw.MUSIQ_SPAQ).exists()
    assert [p.name for p in tmp_path.rglob("*")] == ["pyiqa_model"]  # no partial download left


def test_fetch_downloads_and_records(standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file:// URL stands in for the network; the BPE vocabulary is copied from the clip package
    monkeypatch.setitem(vw.WEIGHT_URLS, vw.MUSIQ_SPAQ, (standin / vw.MUSIQ_SPAQ).as_uri())
    done = vw.fetch_weights(tmp_path, ["imaging_quality"])
    assert done == [tmp_path / vw.MUSIQ_SPAQ]
    assert (tmp_path / vw.MUSIQ_SPAQ).read_bytes() == (standin / vw.MUSIQ_SPAQ).read_bytes()
    record = json.loads((tmp_path / vw.FETCH_MARKER).read_text())
    assert record["files"][vw.MUSIQ_SPAQ]["bytes"] == (standin / vw.MUSIQ_SPAQ).stat().st_size
    assert vw.check_weights(tmp_path, ["imaging_quality"]) == "official"
    # stand-ins are never built over fetched weights
    with pytest.raises(ConfigError, match="not stand-ins"):
        sw.build_standin_weights(tmp_path, ["imaging_quality"])


def test_fetch_refuses_a_standin_folder(standin: Path) -> None:
    with pytest.raises(ConfigError, match="stand-in"):
        vw.fetch_weights(standin, ["imaging_quality"])


def test_cache_dir_is_fixed_once_vbench_is_imported(standin: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VBENCH_CACHE_DIR"):
        vb.import_vbench(tmp_path)
    assert vb.import_vbench(standin).__name__ == "vbench"


def test_standin_builder_never_overwrites_official_weights(tmp_path: Path) -> None:
    (tmp_path / vw.RAFT_THINGS).parent.mkdir(parents=True)
    (tmp_path / vw.RAFT_THINGS).write_bytes(b"official weights")
    with pytest.raises(ConfigError, match="not stand-ins"):
        sw.build_standin_weights(tmp_path, ["dynamic_degree"])
    assert (tmp_path / vw.RAFT_THINGS).read_bytes() == b"official weights"


def test_config_validation() -> None:
    assert vb.VBenchConfig.from_dict({"dimensions": ["imaging_quality", "aesthetic_quality"]}).ordered_dimensions() == ("aesthetic_quality", "imaging_quality")
    with pytest.raises(ConfigError, match="unknown key"):
        vb.VBenchConfig.from_dict({"dimension": ["imaging_quality"]})
    with pytest.raises(ConfigError, match="subject_consistency"):
        vb.VBenchConfig.from_dict({"dimensions": ["subject_consistency"]})
    with pytest.raises(ConfigError, match="unknown key"):
        sw.StandinConfig.from_dict({"raft_bias": [0, 0]})
    assert vw.required_files(["aesthetic_quality", "overall_consistency"]) == [vw.CLIP_VIT_L14, vw.AESTHETIC_HEAD, vw.VICLIP, vw.BPE_VOCAB]
