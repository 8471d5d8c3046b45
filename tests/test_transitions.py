"""The robust detector on small generated videos whose transitions are known by construction.

Each trap (flash, strobe, whip pan) is checked against the paper's detector too, so the test shows
the paper mode does fire there and the robust mode does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import Segment, concat, crossfade, flash_filter, run_ffmpeg, single, whip_pan_filter

from tav_pipeline.detectors import detect, detector_from_cuts
from tav_pipeline.detectors.paper import detect_cuts
from tav_pipeline.detectors.robust import (
    RobustConfig,
    RobustDetector,
    blend_fit,
    detect_transitions,
    same_picture,
    shift_ratio,
    thumbnail,
)
from tav_pipeline.devices import resolve_device
from tav_pipeline.errors import BadVideoError, ConfigError


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    d = tmp_path_factory.mktemp("transitions")
    out: dict[str, tuple[Path, object]] = {}
    out["dissolve"] = (d / "dissolve.mp4", crossfade(d / "dissolve.mp4", Segment("smptebars", 40), Segment("testsrc2", 40), length=16))
    out["fade"] = (d / "fade.mp4", crossfade(d / "fade.mp4", Segment("testsrc2", 40), Segment("rgbtestsrc", 40), length=16, transition="fadeblack"))
    single(d / "fade_in.mp4", Segment("testsrc2", 50, vf="fade=t=in:start_frame=0:nb_frames=12"))
    out["fade_in"] = (d / "fade_in.mp4", None)
    out["early"] = (d / "early.mp4", concat(d / "early.mp4", [Segment("color=c=navy", 2), Segment("testsrc2", 48)]))
    out["last"] = (d / "last.mp4", concat(d / "last.mp4", [Segment("testsrc2", 49), Segment("smptebars", 1)]))
    out["bars"] = (d / "bars.mp4", concat(d / "bars.mp4", [Segment("smptebars", 30), Segment("pal75bars", 30), Segment("rgbtestsrc", 30)]))
    single(d / "flash.mp4", Segment("testsrc2", 50, vf=flash_filter([20])))
    out["flash"] = (d / "flash.mp4", None)
    single(d / "strobe.mp4", Segment("testsrc2", 60, vf=flash_filter(list(range(15, 36, 2)))))
    out["strobe"] = (d / "strobe.mp4", None)
    single(d / "whip.mp4", Segment("testsrc2", 60, vf=whip_pan_filter(width=320, start=25, frames=5, distance=600)), size=(960, 180))
    out["whip"] = (d / "whip.mp4", None)
    return out


def _found(path: Path, config: RobustConfig = RobustConfig()) -> list[tuple[int, str]]:
    return [(c.frame, c.kind) for c in detect_transitions(path, config).cuts]


def test_dissolve(videos: dict[str, tuple[Path, object]]) -> None:
    path, (start, length) = videos["dissolve"]  # type: ignore[misc]
    result = detect_transitions(path)
    assert [c.kind for c in result.cuts] == ["dissolve"]
    c = result.cuts[0]
    assert start <= c.frame < start + length  # the midpoint lies inside the mix
    assert c.length >= length // 2
    assert c.time == pytest.approx(c.frame / 25.0, abs=1e-6)
    assert detect_cuts(path).cuts == []  # the paper's threshold never sees it


def test_fade_through_black(videos: dict[str, tuple[Path, object]]) -> None:
    path, (start, length) = videos["fade"]  # type: ignore[misc]
    cuts = detect_transitions(path).cuts
    assert [c.kind for c in cuts] == ["fade"]
    assert start <= cuts[0].frame < start + length and cuts[0].length >= length // 2


def test_fade_in_from_black_at_the_start_is_a_leader(videos: dict[str, tuple[Path, object]]) -> None:
    """A fade from black at the very start opens the video; it is recorded, not a transition."""
    result = detect_transitions(videos["fade_in"][0])
    assert result.cuts == []
    assert [(b.kind, b.start) for b in result.blanks] == [("leader", 0)]
    assert 3 <= result.blanks[0].end < 12  # the dim frames of the 12-frame fade


def test_cut_in_the_first_frames(videos: dict[str, tuple[Path, object]]) -> None:
    path, cuts = videos["early"]
    assert cuts == [2]
    assert _found(path) == [(2, "cut")]  # a navy card is not black: a real opening shot
    paper = detect_cuts(path)
    assert paper.cuts == []  # dropped by min_scene_len in the paper mode, and recorded as dropped
    assert [c.frame for c in paper.dropped] == [2]


def test_cut_on_the_last_frame(videos: dict[str, tuple[Path, object]]) -> None:
    path, cuts = videos["last"]
    assert _found(path) == [(c, "cut") for c in cuts]  # type: ignore[union-attr]


def test_cuts_between_bar_patterns_are_not_motion(videos: dict[str, tuple[Path, object]]) -> None:
    """Bars shifted sideways can line up in brightness; the motion test must not veto these."""
    path, cuts = videos["bars"]
    assert _found(path) == [(c, "cut") for c in cuts]  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["flash", "strobe", "whip"])
def test_traps_are_ignored(videos: dict[str, tuple[Path, object]], name: str) -> None:
    path = videos[name][0]
    assert detect_cuts(path).cuts != []  # the paper mode fires here...
    assert _found(path) == []  # ...the robust mode does not


def test_chunks_give_the_same_answer(tmp_path: Path) -> None:
    """A 300-frame video analysed in 150-frame chunks (64 shared) and in one piece."""
    path = tmp_path / "long.mp4"
    concat(path, [Segment("testsrc2", 70), Segment("smptebars", 70), Segment("rgbtestsrc", 80), Segment("testsrc2", 80, vf=flash_filter([30]))])
    whole = detect_transitions(path)
    pieces = detect_transitions(path, RobustConfig(chunk=150, overlap=64))
    assert [(c.frame, c.kind) for c in whole.cuts] == [(70, "cut"), (140, "cut"), (220, "cut")]
    assert pieces.cuts == whole.cuts
    assert pieces.frame_count == whole.frame_count == 300


def test_ambiguous_events_go_to_the_model(tmp_path: Path) -> None:
    """A slowly zooming fractal looks like a mix of its neighbours: the model is asked and says
    no, and the hard cut is still found."""
    path = tmp_path / "zoom.mp4"
    concat(path, [Segment("mandelbrot", 24), Segment("smptebars", 16)])
    rng_before = np.random.get_state()[1].copy()
    result = detect_transitions(path)
    assert np.array_equal(np.random.get_state()[1], rng_before)  # loading the model seeds nothing
    assert [(c.frame, c.kind) for c in result.cuts] == [(24, "cut")]
    assert result.settings["model_windows"] >= 1
    assert result.detector == "robust"


def test_dispatcher_and_config(videos: dict[str, tuple[Path, object]]) -> None:
    detector = detector_from_cuts({"mode": "robust", "threshold": 99.0, "robust": {"candidate_threshold": 12}})
    assert isinstance(detector, RobustDetector) and detector.config.candidate_threshold == 12
    result = detect(videos["early"][0], detector_from_cuts({"mode": "robust"}))
    assert result.detector == "robust" and [c.frame for c in result.cuts] == [2]
    cfg = RobustConfig.from_dict({"candidate_threshold": 12, "blend_scales": [4, 8, 16]})
    assert cfg.candidate_threshold == 12 and cfg.blend_scales == (4, 8, 16)
    with pytest.raises(ConfigError, match="unknown key"):
        RobustConfig.from_dict({"treshold": 1})
    with pytest.raises(ConfigError):
        RobustConfig(candidate_threshold=40.0)
    with pytest.raises(ConfigError):
        RobustConfig(device="tpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="cuts.robust.device"):
        resolve_device("tpu:0", key="cuts.robust.device")


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadVideoError) as info:
        detect_transitions(tmp_path / "missing.mp4")
    assert info.value.reason == "missing_file"
    one = tmp_path / "one.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-frames:v", "1", "-c:v", "libx264", str(one)])
    with pytest.raises(BadVideoError) as info:
        detect_transitions(one)
    assert info.value.reason == "one_frame"


def test_cheap_tests_on_arrays() -> None:
    rng = np.random.default_rng(1)
    scene = (rng.random((60, 120, 3)) * 255).astype(np.uint8)
    scene = np.asarray(thumbnail(np.repeat(np.repeat(scene, 4, 0), 4, 1)), np.float32)  # 48x27, smooth
    big = np.zeros((27, 70, 3), np.float32)
    big[:, :48] = scene
    big[:, 48:] = scene[:, :22]
    moved = np.roll(big, -7, axis=1)[:, :48]  # the camera turned by 7 pixels
    ratio, shift = shift_ratio(big[:, :48], moved)
    assert ratio < 0.2 and shift[0] == -7
    other = np.asarray(rng.random((27, 48, 3)) * 255, np.float32)
    assert shift_ratio(scene, other)[0] > 0.6  # unrelated pictures: no shift explains them
    # An exact 30/70 mix of the frames 2 before and after.
    a, b = scene, other
    frames = np.stack([a, a, 0.7 * a + 0.3 * b, b, b]).astype(np.float32)
    change, residual, weight = blend_fit(frames, 2)
    assert residual[2] < 1e-3 and weight[2] == pytest.approx(0.3, abs=1e-3) and change[2] > 10
    assert same_picture(scene, scene * 0.5 + 10) > 0.99 and same_picture(scene, other) < 0.5
