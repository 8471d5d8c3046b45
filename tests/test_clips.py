from __future__ import annotations

import pytest

from tav_pipeline.clips import ClipConfig, ClipRecord, extract_clip, first_cut, plan_window, rejection
from tav_pipeline.cuts import Cut, CutResult
from tav_pipeline.detectors.paper import CutConfig, detect_cuts
from tav_pipeline.errors import BadVideoError, ConfigError
from tav_pipeline.video import count_frames, probe

FPS = 24.0


def cut_at(frame: int) -> Cut:
    return Cut(frame=frame, time=frame / FPS, score=50.0)


@pytest.mark.parametrize(
    ("policy", "cut", "total", "expected"),
    [
        ("paper", 240, 480, (120, 360)),  # 5 s each side
        ("paper", 48, 480, (0, 168)),  # 2 s before: take what exists
        ("paper", 440, 480, (320, 480)),  # 40 frames after
        ("shift", 48, 480, (0, 240)),  # keeps 10 s, slides right
        ("shift", 440, 480, (240, 480)),  # keeps 10 s, slides left
        ("shift", 100, 180, (0, 180)),  # shorter video than the window: all of it
        ("drop", 240, 480, (120, 360)),
    ],
)
def test_plan_window(policy: str, cut: int, total: int, expected: tuple[int, int]) -> None:
    w = plan_window(cut_at(cut), total, FPS, ClipConfig(edge_policy=policy))  # type: ignore[arg-type]
    assert (w.start_frame, w.end_frame) == expected
    assert w.cut_frame_in_clip == cut - expected[0]


def test_paper_policy_records_shortfall() -> None:
    w = plan_window(cut_at(48), 480, FPS, ClipConfig())
    assert w.shortfall_before == pytest.approx(3.0)
    assert w.shortfall_after == 0.0


def test_drop_policy_rejects_short_side() -> None:
    with pytest.raises(BadVideoError) as err:
        plan_window(cut_at(48), 480, FPS, ClipConfig(edge_policy="drop"))
    assert err.value.reason == "window_too_short"


def test_min_side_rejects_cut_in_last_frames() -> None:
    with pytest.raises(BadVideoError) as err:
        plan_window(cut_at(470), 480, FPS, ClipConfig(edge_policy="shift"))
    assert err.value.reason == "window_too_short"


def test_config_rejects_unknown_keys_and_values() -> None:
    with pytest.raises(ConfigError):
        ClipConfig.from_dict({"lenght": 10})
    with pytest.raises(ConfigError):
        ClipConfig.from_dict({"edge_policy": "stretch"})
    with pytest.raises(ConfigError):
        ClipConfig.from_dict({"encoder": {"codec": "x"}})
    assert ClipConfig.from_dict({"encoder": {"crf": 30}}).encoder.crf == 30


def test_first_cut_only_and_no_cut() -> None:
    result = CutResult(video="v", path="v.mp4", status="ok", fps=FPS, frame_count=480, cuts=[cut_at(100), cut_at(300)])
    assert first_cut(result).frame == 100
    empty = CutResult(video="v", path="v.mp4", status="ok", fps=FPS, frame_count=480)
    assert rejection(empty, ClipConfig()) is not None
    assert rejection(empty, ClipConfig())[0] == "no_cut"  # type: ignore[index]


def test_extract_clip_is_frame_accurate(make_video, tmp_path) -> None:
    src = make_video("clip_src", [("pattern", 7.0), ("fractal", 6.0)], audio=True)
    result = detect_cuts(src, CutConfig())
    assert [c.frame for c in result.cuts] == [168]
    record = extract_clip(result, tmp_path / "clip.mp4", ClipConfig(encoder=ClipConfig().encoder.__class__(preset="ultrafast")))
    assert record.frames == 240 and record.cut_frame_in_clip == 120
    assert record.start == pytest.approx(2.0) and record.duration == pytest.approx(10.0)
    info = probe(record.clip)
    assert info.fps == pytest.approx(FPS) and info.has_audio
    assert count_frames(record.clip) == 240
    # the cut is exactly where the sidecar says
    again = detect_cuts(record.clip, CutConfig())
    assert [c.frame for c in again.cuts] == [record.cut_frame_in_clip]
    record.write(tmp_path / "clip.json")
    assert ClipRecord.read(tmp_path / "clip.json") == record


def test_extract_clip_short_side_and_odd_size(make_video, tmp_path) -> None:
    src = make_video("odd_src", [("sunset", 2.0), ("pattern", 4.0)], size=(161, 121), pix_fmt="yuv444p")
    result = detect_cuts(src, CutConfig())
    assert [c.frame for c in result.cuts] == [48]
    record = extract_clip(result, tmp_path / "odd.mp4", ClipConfig())
    assert (record.width, record.height) == (160, 120)  # cropped to even for 4:2:0
    assert record.frames == 48 + 96 and record.cut_frame_in_clip == 48
    assert record.shortfall_before == pytest.approx(3.0) and record.shortfall_after == pytest.approx(1.0)


def test_file_names_with_spaces_and_quotes(make_video, tmp_path, monkeypatch) -> None:
    """Names with quotes, spaces and shell syntax reach ffmpeg as they are. A shell would run the
    ``touch`` in the working directory, so the test runs in an empty one and checks it stays empty."""
    src = make_video("it's a \"quoted\" name; $(touch pwned)", [("red", 2.0), ("blue", 2.0)])
    result = detect_cuts(src, CutConfig())
    out = tmp_path / "out dir" / "it's \"x\"; $(touch pwned_out) `touch pwned_tick`.mp4"
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    record = extract_clip(result, out, ClipConfig())
    assert out.exists() and record.frames == 96
    assert list(work.iterdir()) == []


def test_extract_clip_step_writes_a_reject_instead_of_raising(tmp_path, make_video) -> None:
    """A source that stops decoding between cut detection and cutting: the step records the
    reject (empty placeholder mp4), validation skips it, and collect_rejects names the stage."""
    import shutil

    from tav_pipeline import steps
    from tav_pipeline.validation import ValidationRecord

    src = tmp_path / "src.mp4"
    shutil.copy(make_video("step_src", [("red", 3.0), ("blue", 3.0)]), src)
    result = detect_cuts(src, CutConfig(), video="vid")
    result.write(tmp_path / "cuts.json")
    src.write_bytes(src.read_bytes()[:1500])  # truncated: the moov atom is gone
    record = steps.extract_clip_step(tmp_path / "cuts.json", tmp_path / "c.mp4", tmp_path / "c.json", {})
    assert (record.status, record.reason, record.clip) == ("rejected", "unreadable", "")
    assert ClipRecord.read(tmp_path / "c.json") == record
    assert (tmp_path / "c.mp4").stat().st_size == 0
    check = steps.validate_clip_step(tmp_path / "c.json", tmp_path / "v.json", {}, {})
    assert not check.passed and check.reason == "clip_rejected" and "unreadable" in check.detail
    assert ValidationRecord.read(tmp_path / "v.json") == check

    table = steps.collect_rejects([], [tmp_path / "cuts.json"], [tmp_path / "v.json"], {}, tmp_path / "r.csv",
                                  tmp_path / "f.csv", sidecars=[tmp_path / "c.json"])
    assert table.to_dict("records") == [
        {"video": "vid", "stage": "extract_clip", "reason": "unreadable", "detail": record.detail, "path": str(src)}
    ]


def test_collect_rejects_reports_keyframe_rejects(tmp_path) -> None:
    import json

    from tav_pipeline import steps

    (tmp_path / "k.json").write_text(json.dumps(
        {"video": "v1", "status": "rejected", "clip": "c.mp4", "reason": "decode_error", "detail": "frames [3]"}))
    (tmp_path / "ok.json").write_text(json.dumps({"video": "v2", "status": "ok", "clip": "d.mp4"}))
    table = steps.collect_rejects([], [], [], {}, tmp_path / "r.csv", tmp_path / "f.csv",
                                  keyframes=[tmp_path / "k.json", tmp_path / "ok.json"])
    assert table[["video", "stage", "reason"]].to_dict("records") == [
        {"video": "v1", "stage": "extract_keyframes", "reason": "decode_error"}
    ]
