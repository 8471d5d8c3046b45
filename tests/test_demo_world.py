"""The demo's miniature world, the corpus drawn from it and the captioner trained on it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tav_pipeline.demo import DemoConfig, build_corpus, demo_videos
from tav_pipeline.demo.world import (
    BACKGROUNDS,
    Scene,
    all_captions,
    all_scenes,
    render_frame,
    render_scenes,
    write_video,
)
from tav_pipeline.errors import TavError


def test_every_scene_has_its_own_caption() -> None:
    captions = all_captions()
    assert len(captions) == len(set(captions)) == 24
    assert Scene("red", "ball", "white").caption == "a white ball on a red background"
    with pytest.raises(TavError, match="background"):
        Scene("purple", "ball", "white")


def test_backgrounds_differ_by_more_than_the_validation_threshold() -> None:
    for a, b in itertools.combinations(BACKGROUNDS.values(), 2):
        assert np.abs(np.subtract(a, b)).mean() > 50


def test_frames_show_the_object_and_its_motion() -> None:
    scene = Scene("blue", "box", "white", "right")
    start, end = render_frame(scene, 0.0, 320, 240), render_frame(scene, 1.0, 320, 240)
    white = np.all(start == 245, axis=-1)
    assert 0.1 < white.mean() < 0.3  # the object, about a sixth of the frame
    assert np.all(end == 245, axis=-1).nonzero()[1].mean() > white.nonzero()[1].mean() + 50  # moved right
    assert not np.array_equal(render_frame(Scene("blue", "ball", "white"), 0.5, 64, 48),
                              render_frame(Scene("blue", "triangle", "white"), 0.5, 64, 48))


def test_a_two_scene_video_has_its_one_cut_at_the_known_frame(tmp_path: Path) -> None:
    from tav_pipeline.detectors.paper import detect_cuts
    from tav_pipeline.validation import max_frame_difference

    scenes = ((Scene("red", "ball", "white", "left"), 3.0), (Scene("yellow", "triangle", "black", "up"), 2.5))
    path = write_video(render_scenes(scenes, 24, 160, 120), tmp_path / "two.mp4", 24)
    result = detect_cuts(path)
    assert [c.frame for c in result.cuts] == [72]
    diff, frame = max_frame_difference(path)
    assert diff > 50 and frame in (71, 72)


def test_the_corpus_lists_every_scene_with_its_true_caption(tmp_path: Path) -> None:
    cfg = DemoConfig(width=64, height=48, world_videos=3)
    table = build_corpus(tmp_path / "videos", tmp_path / "meta.csv", tmp_path / "truth.json", cfg)
    truth = json.loads((tmp_path / "truth.json").read_text())["videos"]
    assert len(table) == len(truth) == 17 + 3
    world = {k: v for k, v in truth.items() if k.startswith("world_")}
    assert len(world) == 3
    for record in world.values():
        captions = [s["caption"] for s in record["scenes"]]
        assert all(c in all_captions() for c in captions) and len(captions) in (2, 3)
        assert record["cuts"] == [s["start"] for s in record["scenes"][1:]]
        backgrounds = [s["scene"]["background"] for s in record["scenes"]]
        assert all(a != b for a, b in zip(backgrounds, backgrounds[1:]))
    assert truth["cam1_00000000000000000000"]["scenes"][0]["caption"] is None
    assert [v.video_id for v in demo_videos(cfg)] == list(truth)
    assert demo_videos(cfg) == demo_videos(DemoConfig(width=64, height=48, world_videos=3))  # seeded


def test_all_scenes_cover_the_grammar() -> None:
    assert {s.caption for s in all_scenes()} == set(all_captions())


@pytest.mark.slow
def test_the_trained_captioner_names_held_out_keyframes(tmp_path: Path) -> None:
    """Trained as the rule build_demo_blip trains it; captioned through the pipeline's caption code
    after a libx264 round trip."""
    from tav_pipeline.demo.captioner import REPORT_FILE, CaptionerTraining, train_captioner

    report = train_captioner(tmp_path / "blip", CaptionerTraining())
    assert report["n"] == 96
    assert report["accuracy"] >= 0.85, report["errors"]
    assert json.loads((tmp_path / "blip" / REPORT_FILE).read_text())["accuracy"] == report["accuracy"]
