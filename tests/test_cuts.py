"""The paper's detector against known cut frames and against PySceneDetect itself.

Every video is made once per session with ffmpeg's lavfi sources (:mod:`_synthetic`), so the true
cut frames are known by construction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _synthetic import Segment, audio_only, concat, flash_filter, run_ffmpeg
from scenedetect import ContentDetector, SceneManager, StatsManager, open_video
from scenedetect import detect as psd_detect
from scenedetect.detector import FlashFilter

from tav_pipeline.cuts import Cut, CutResult
from tav_pipeline.detectors import detect, detector_from_cuts, modes, scan
from tav_pipeline.detectors.paper import CutConfig, HsvCutDetector, MinSceneFilter, detect_cuts
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import iter_frames


@dataclass(frozen=True)
class Clip:
    path: Path
    cuts: list[int]
    """True cut frames (first frame of each new segment)."""
    expected: list[int]
    """What a detector with min_scene_len=15 reports: cuts closer than 15 frames to the start are
    dropped (PySceneDetect's rule)."""


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    d = tmp_path_factory.mktemp("cuts")
    out: dict[str, Clip] = {}

    def add(name: str, segments: list[Segment], size: tuple[int, int] = (320, 180)) -> None:
        cuts = concat(d / f"{name}.mp4", segments, size=size)
        out[name] = Clip(d / f"{name}.mp4", cuts, [c for c in cuts if c >= 15])

    add("bars", [Segment("testsrc2", 30), Segment("mandelbrot", 30), Segment("smptebars", 20), Segment("color=c=red", 20)])
    # 400x224 downscales to 256x143.36 -> 143 rows: exercises PySceneDetect's rounding rule.
    add("odd", [Segment("gradients", 24), Segment("testsrc2", 26), Segment("rgbtestsrc", 25), Segment("mandelbrot", 25)], size=(400, 224))
    # A cut 5 frames in (dropped by the minimum scene length) and one on the very last frame.
    add("edges", [Segment("testsrc2", 5), Segment("mandelbrot", 35), Segment("smptebars", 31), Segment("color=c=blue", 1)])
    # Cut at 20, then a strobe (white every other frame, 25..45) on a still picture.
    strobe = flash_filter(list(range(5, 26, 2)))
    add("strobe", [Segment("testsrc2", 20), Segment("smptebars", 60, vf=strobe)])
    return out


def _psd_stats(path: Path, detector: ContentDetector) -> tuple[dict[int, float], list[int]]:
    """PySceneDetect's per-frame content_val (PyAV backend, so decoding is identical to ours) and
    its cut frames."""
    video = open_video(str(path), backend="pyav")
    stats = StatsManager()
    manager = SceneManager(stats)
    manager.add_detector(detector)
    manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    cuts = [start.frame_num for start, _ in scenes[1:]]
    scores = {}
    for i in range(video.frame_number):
        value = stats.get_metrics(i, [ContentDetector.FRAME_SCORE_KEY])[0]
        if value is not None:
            scores[i] = float(value)
    return scores, cuts


def _our_scores(path: Path, config: CutConfig) -> tuple[list[float], list[int]]:
    frames = ((f.index, f.time, f.image) for f in iter_frames(path, width=config.width, resize=config.resize))
    found = scan(frames, HsvCutDetector(config), keep_scores=True)
    return found.scores, [c.frame for c in found.cuts]


@pytest.mark.parametrize("name", ["bars", "odd", "edges", "strobe"])
def test_known_cuts(clips: dict[str, Clip], name: str) -> None:
    clip = clips[name]
    if name == "strobe":
        # The strobe is above the threshold for 22 frames, longer than min_scene_len: the merge
        # filter reports it once, at its last above-threshold frame (see test_merge_vs_suppress).
        expected = [20, 46]
    else:
        expected = clip.expected
    result = detect_cuts(clip.path)
    assert [c.frame for c in result.cuts] == expected
    assert result.status == "ok" and result.detector == "paper"
    assert result.frame_count == sum(1 for _ in iter_frames(clip.path, width=16))
    for c in result.cuts:
        assert c.time == pytest.approx(c.frame / 25.0, abs=1e-6)
        assert c.score >= 27.0 and c.kind == "cut" and c.length == 1


@pytest.mark.parametrize("name", ["bars", "odd", "edges", "strobe"])
def test_scores_equal_pyscenedetect(clips: dict[str, Clip], name: str) -> None:
    """weights (1,1,1), weighted_mean, inclusive and OpenCV resizing: PySceneDetect's numbers."""
    path = clips[name].path
    theirs, their_cuts = _psd_stats(path, ContentDetector())
    ours, our_cuts = _our_scores(path, CutConfig(resize="opencv"))
    assert len(theirs) == len(ours) - 1  # PySceneDetect stores no score for the first frame
    diffs = [abs(ours[i] - theirs[i]) for i in theirs]
    assert max(diffs) < 1e-9
    assert max(ours) > 27.0  # the comparison covers scores on both sides of the threshold
    assert our_cuts == their_cuts


@pytest.mark.parametrize("mode", ["merge", "suppress"])
def test_filter_modes_equal_pyscenedetect(clips: dict[str, Clip], mode: str) -> None:
    path = clips["strobe"].path
    psd_mode = FlashFilter.Mode.MERGE if mode == "merge" else FlashFilter.Mode.SUPPRESS
    _, their_cuts = _psd_stats(path, ContentDetector(filter_mode=psd_mode))
    _, our_cuts = _our_scores(path, CutConfig(resize="opencv", filter_mode=mode))  # type: ignore[arg-type]
    assert our_cuts == their_cuts


@pytest.mark.parametrize("name", ["bars", "odd", "edges", "strobe"])
def test_default_matches_pyscenedetect_default(clips: dict[str, Clip], name: str) -> None:
    """Our default (downscaling inside swscale) finds PySceneDetect's default cuts (OpenCV)."""
    path = clips[name].path
    scenes = psd_detect(str(path), ContentDetector())
    assert [c.frame for c in detect_cuts(path).cuts] == [start.frame_num for start, _ in scenes[1:]]


def test_merge_vs_suppress(clips: dict[str, Clip]) -> None:
    """A strobe from frame 25 to 46, right after a cut at 20 (min_scene_len 15).

    ``suppress`` ignores above-threshold frames until 15 frames have passed since the last cut, so
    the strobe fires again at 35. ``merge`` folds the whole burst into one cut at its last
    above-threshold frame (46), emitted once the signal has stayed low for 15 frames.
    """
    path = clips["strobe"].path
    merge = detect_cuts(path, CutConfig(filter_mode="merge"))
    suppress = detect_cuts(path, CutConfig(filter_mode="suppress"))
    assert [c.frame for c in merge.cuts] == [20, 46]
    assert [c.frame for c in suppress.cuts] == [20, 35]
    unfiltered = detect_cuts(path, CutConfig(min_scene_len=0))
    assert [c.frame for c in unfiltered.cuts] == [20, *range(25, 47)]


def test_min_scene_filter_unit() -> None:
    """The filter on its own: a burst shorter than the minimum length is never reported by merge."""
    merge, suppress = MinSceneFilter("merge", 5), MinSceneFilter("suppress", 5)
    above = {7, 9, 10}
    got_merge = [c for i in range(30) for c in merge(i, i in above)]
    got_suppress = [c for i in range(30) for c in suppress(i, i in above)]
    assert got_merge == [7]  # 9 and 10 start a merge whose span (1 frame) never reaches 5
    assert got_suppress == [7]


def test_weighted_sum_scales_by_weight_norm(clips: dict[str, Clip]) -> None:
    path = clips["bars"].path
    weights = (1.0, -2.0, 0.5)
    mean, _ = _our_scores(path, CutConfig(weights=weights, normalisation="weighted_mean"))
    total, _ = _our_scores(path, CutConfig(weights=weights, normalisation="weighted_sum"))
    assert len(mean) == len(total) and max(abs(m) for m in mean) > 1.0
    np.testing.assert_allclose(np.array(total), 3.5 * np.array(mean), rtol=1e-12, atol=1e-12)
    # Luma only: the score is exactly the V component.
    luma, _ = _our_scores(path, CutConfig(weights=(0.0, 0.0, 1.0)))
    det = HsvCutDetector(CutConfig())
    values = []
    for f in iter_frames(path, width=256):
        det.process_frame(f.index, f.time, f.image)
        values.append(det.last_components.value if det.last_components and f.index else 0.0)
    np.testing.assert_allclose(luma, values, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("inclusive", "expected"), [(True, [1]), (False, [])])
def test_threshold_inclusive_or_strict(inclusive: bool, expected: list[int]) -> None:
    """A frame whose score is exactly the threshold: V jumps by 81 everywhere, H and S stay,
    so the weighted mean is 81/3 = 27.0 exactly."""
    det = HsvCutDetector(CutConfig(threshold=27.0, inclusive=inclusive, min_scene_len=0))
    first = np.zeros((8, 8, 3), np.uint8)
    second = first.copy()
    second[..., 2] = 81
    assert det.process_hsv(0, first) == []
    assert det.process_hsv(1, second) == expected
    assert det.last_score == 27.0
    assert det.last_components == (0.0, 0.0, 81.0)


def test_first_cut_is_dropped_within_min_scene_len() -> None:
    det = HsvCutDetector(CutConfig(min_scene_len=3))
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    frames = [black, white, white, white, black, black, black, black]
    got = [c.frame for i, f in enumerate(frames) for c in det.process_frame(i, i / 25, f)]
    assert got == [4]  # the cut at 1 is closer than 3 frames to the start


def test_result_round_trip(clips: dict[str, Clip], tmp_path: Path) -> None:
    result = detect_cuts(clips["bars"].path, video="bars")
    result.write(tmp_path / "bars.json")
    back = CutResult.read(tmp_path / "bars.json")
    assert back == result
    assert back.first_cut == Cut(frame=30, time=1.2, score=back.cuts[0].score)
    assert result.to_dict()["first_cut"]["frame"] == 30
    assert result.settings["weights"] == [1.0, 1.0, 1.0]
    assert result.fps == pytest.approx(25.0) and (result.width, result.height) == (320, 180)


def test_config_from_dict() -> None:
    cfg = CutConfig.from_dict({"threshold": 30, "weights": {"hue": 0, "saturation": 1, "value": 2}})
    assert cfg.weights == (0.0, 1.0, 2.0) and cfg.threshold == 30
    with pytest.raises(ConfigError, match="unknown key"):
        CutConfig.from_dict({"treshold": 30})
    with pytest.raises(ConfigError):
        CutConfig(weights=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError):
        CutConfig(filter_mode="drop")  # type: ignore[arg-type]


def test_registry(clips: dict[str, Clip]) -> None:
    assert modes() == ["paper", "robust"]
    detector = detector_from_cuts({"mode": "paper", "threshold": 200.0, "robust": {"cut_threshold": 30.0}})
    assert isinstance(detector, HsvCutDetector) and detector.config.threshold == 200.0
    assert detector_from_cuts({}).mode == "paper"
    high = detect(clips["bars"].path, detector)
    assert high.cuts == [] and high.settings["threshold"] == 200.0
    result = detect(clips["bars"].path, detector_from_cuts({"threshold": 27.0}))
    assert [c.frame for c in result.cuts] == clips["bars"].expected
    with pytest.raises(ConfigError, match="unknown detector mode"):
        detector_from_cuts({"mode": "fancy"})


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {"missing_file": d / "nope.mp4"}
    (d / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["unreadable"] = d / "random.mp4"
    good = d / "good.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "10", "-c:v", "libx264",
                "-movflags", "+faststart", str(good)])  # fmt: skip
    data = good.read_bytes()
    plain = d / "plain.mp4"  # moov at the end: cutting the file in half loses the header
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "10", "-c:v", "libx264", str(plain)])
    (d / "truncated.mp4").write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    files["unreadable_truncated"] = d / "truncated.mp4"
    # The header (moov) survives but every frame (mdat) is cut off.
    mdat = data.index(b"mdat")
    (d / "no_frames.mp4").write_bytes(data[: mdat + 4])
    files["zero_frames"] = d / "no_frames.mp4"
    (d / "zeroed.mp4").write_bytes(data[: mdat + 4] + bytes(len(data) - mdat - 4))
    files["decode_error"] = d / "zeroed.mp4"
    audio_only(d / "tone.wav")
    files["no_video_stream"] = d / "tone.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "1", "-c:v", "libx264", str(d / "one.mp4")])
    files["one_frame"] = d / "one.mp4"
    return files


@pytest.mark.parametrize(
    "case", ["missing_file", "unreadable", "unreadable_truncated", "zero_frames", "decode_error", "no_video_stream", "one_frame"]
)
def test_bad_input(bad_files: dict[str, Path], case: str) -> None:
    with pytest.raises(BadVideoError) as info:
        detect_cuts(bad_files[case])
    assert info.value.reason == case.removesuffix("_truncated")
    assert info.value.path == str(bad_files[case])
    rejected = CutResult.rejected("x", bad_files[case], info.value)
    assert rejected.status == "rejected" and rejected.reason == info.value.reason


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BadVideoError) as info:
        detect_cuts(tmp_path)
    assert info.value.reason == "unreadable"
    assert os.path.isdir(info.value.path)
