"""Average segments on generated videos whose scene counts are known."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _generated import write_group

from tav_pipeline.errors import ConfigError, MissingAssetError, RecordError
from tav_pipeline.metrics.segments import (
    PER_VIDEO_COLUMNS,
    SegmentsConfig,
    count_segments,
    count_segments_step,
    evaluate_segments,
    read_generated,
    summarise_segments,
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Group B: a static-scene video (1 scene), one cut at frame 16 (2 scenes), cuts at 16 and 32
    (3 scenes, 48 frames), and group A with one cut."""
    root = tmp_path_factory.mktemp("generated")
    write_group(root, "m", "baseline", "B", [[], [16]], frames=33)
    write_group(root, "m", "epoch_2", "B", [[16, 32]], frames=48)
    write_group(root, "m", "baseline", "A", [[16]], frames=33)
    return root


def test_one_cut_counts_two_segments(generated: Path) -> None:
    videos = read_generated(generated / "m/baseline/B/prompts.json", model="m", checkpoint="baseline")
    row = count_segments(videos[1])
    assert row["status"] == "ok"
    assert row["segments"] == 2
    assert row["cut_frames"] == "16"
    assert row["requested_scenes"] == 2 and row["exact"] is True
    # the cut is the first frame of the new scene: frame 16 of 33 at 8 fps
    assert row["first_cut_frame"] == 16
    assert row["first_cut_time"] == pytest.approx(2.0, abs=1e-6)
    assert row["first_cut_position"] == pytest.approx(16 / 33, abs=1e-4)


def test_no_cut_is_one_segment_and_two_cuts_three(generated: Path) -> None:
    static = read_generated(generated / "m/baseline/B/prompts.json", model="m", checkpoint="baseline")[0]
    two = read_generated(generated / "m/epoch_2/B/prompts.json", model="m", checkpoint="epoch_2")[0]
    r0, r2 = count_segments(static), count_segments(two)
    assert (r0["segments"], r0["cut_frames"], r0["exact"], r0["first_cut_position"]) == (1, "", False, None)
    assert (r2["segments"], r2["cut_frames"], r2["exact"]) == (3, "16;32", False)


def test_group_a_requests_one_scene(generated: Path) -> None:
    video = read_generated(generated / "m/baseline/A/prompts.json", model="m", checkpoint="baseline")[0]
    row = count_segments(video)
    assert row["segments"] == 2 and row["requested_scenes"] == 1 and row["exact"] is False


def test_summary_averages_and_extras(generated: Path) -> None:
    videos = read_generated(generated / "m/baseline/B/prompts.json", model="m", checkpoint="baseline")
    table = evaluate_segments(videos, progress=False)
    assert list(table.columns) == PER_VIDEO_COLUMNS
    s = summarise_segments(table).iloc[0]
    assert s["average_segments"] == pytest.approx(1.5)
    assert s["exact_count_accuracy"] == pytest.approx(0.5)
    assert s["share_with_cut"] == pytest.approx(0.5)
    assert s["first_cut_position"] == pytest.approx(16 / 33, abs=1e-4)
    assert (s["videos"], s["unreadable"], s["requested_scenes"]) == (2, 0, 2)


def test_threshold_is_a_config_value(generated: Path) -> None:
    video = read_generated(generated / "m/baseline/B/prompts.json", model="m", checkpoint="baseline")[1]
    config = SegmentsConfig.from_dict({"threshold": 200.0}, {"threshold": 27.0, "mode": "paper"})
    assert config.detector().settings.threshold == 200.0
    assert count_segments(video, config)["segments"] == 1


def test_min_scene_len_drops_an_early_cut(tmp_path: Path) -> None:
    # PySceneDetect's rule, kept by the paper's detector: no cut within min_scene_len of the start.
    pj = write_group(tmp_path, "m", "baseline", "C", [[10]], frames=33)
    video = read_generated(pj, model="m", checkpoint="baseline")[0]
    assert count_segments(video, SegmentsConfig.from_dict({}, {"min_scene_len": 15}))["segments"] == 1
    assert count_segments(video, SegmentsConfig.from_dict({"min_scene_len": 4}, {"min_scene_len": 15}))["segments"] == 2


def test_unreadable_video_is_a_row_not_an_average(tmp_path: Path) -> None:
    pj = write_group(tmp_path, "m", "baseline", "C", [[16], [16]])
    (pj.parent / "1.mp4").write_bytes(b"not a video at all")
    table = evaluate_segments(read_generated(pj, model="m", checkpoint="baseline"), progress=False)
    assert table.loc[1, "status"] == "rejected" and table.loc[1, "reason"] in ("unreadable", "decode_error", "no_video_stream")
    s = summarise_segments(table).iloc[0]
    assert (s["videos"], s["unreadable"], s["average_segments"]) == (1, 1, 2.0)


def test_config_inherits_cuts_and_rejects_unknown_keys() -> None:
    cuts = {"mode": "paper", "threshold": 30.0, "min_scene_len": 10, "weights": {"hue": 1.0, "saturation": 0.5, "value": 1.0}, "robust": {}}
    config = SegmentsConfig.from_dict({"mode": None, "threshold": None, "min_scene_len": None}, cuts)
    paper = config.detector().settings
    assert (config.mode, paper.threshold, paper.min_scene_len, paper.weights) == ("paper", 30.0, 10, (1.0, 0.5, 1.0))
    robust = SegmentsConfig.from_dict({"mode": "robust"}, {**cuts, "robust": {"candidate_threshold": 12}}).detector()
    assert (robust.mode, robust.settings.candidate_threshold) == ("robust", 12)
    assert config.requested("A") == 1 and config.requested("C") == 2
    with pytest.raises(ConfigError, match="unknown key"):
        SegmentsConfig.from_dict({"treshold": 3}, cuts)
    with pytest.raises(ConfigError, match="mode"):
        SegmentsConfig.from_dict({"mode": "magic"}, cuts)
    with pytest.raises(ConfigError, match="group 'D'"):
        config.requested("D")


def test_missing_video_names_the_file_and_rule(tmp_path: Path) -> None:
    folder = tmp_path / "m/baseline/A"
    folder.mkdir(parents=True)
    (folder / "prompts.json").write_text(json.dumps({"group": "A", "prompts": ["a cat"]}))
    with pytest.raises(MissingAssetError) as err:
        read_generated(folder / "prompts.json", model="m", checkpoint="baseline")
    assert str(folder / "0.mp4") in str(err.value) and "generate_videos" in str(err.value)
    (folder / "prompts.json").write_text(json.dumps(["a cat"]))
    with pytest.raises(RecordError, match="prompts.json"):
        read_generated(folder / "prompts.json", model="m", checkpoint="baseline")


def test_step_writes_the_per_video_table(generated: Path, tmp_path: Path) -> None:
    out = tmp_path / "segments.csv"
    count_segments_step(generated / "m/baseline/B/prompts.json", out, {}, {"mode": "paper"}, "m", "baseline")
    table = pd.read_csv(out)
    assert list(table["segments"]) == [1, 2]
    assert set(table["model"]) == {"m"} and set(table["group"]) == {"B"}
