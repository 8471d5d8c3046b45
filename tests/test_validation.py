from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tav_pipeline.clips import ClipConfig, extract_clip
from tav_pipeline.detectors.paper import CutConfig, detect_cuts
from tav_pipeline.validation import ValidationConfig, max_frame_difference, validate_clip
from tav_pipeline.video import encode_frames


def solid(rgb: tuple[int, int, int], n: int) -> list[np.ndarray]:
    return [np.full((64, 64, 3), rgb, dtype=np.uint8) for _ in range(n)]


def test_max_difference_of_known_frames(tmp_path) -> None:
    # grey 40 -> grey 200: mean BGR absdiff is 160 at the switch
    path = tmp_path / "grey.mp4"
    encode_frames(solid((40, 40, 40), 10) + solid((200, 200, 200), 10), path, fps=10, crf=0)
    value, where = max_frame_difference(path)
    assert value == pytest.approx(160, abs=2)
    assert where == 10


def test_paper_threshold_keeps_and_rejects(tmp_path, make_video) -> None:
    # a small brightness step (about 30): a real cut by the detector's HSV score for saturated
    # colours, but below the paper's BGR threshold of 50
    subtle = tmp_path / "subtle.mp4"
    encode_frames(solid((120, 120, 120), 12) + solid((150, 150, 150), 12), subtle, fps=12, crf=0)
    value, _ = max_frame_difference(subtle)
    assert 25 < value < 35

    src = make_video("val_src", [("red", 3.0), ("blue", 3.0)])
    record = extract_clip(detect_cuts(src, CutConfig()), tmp_path / "c.mp4", ClipConfig())
    paper = validate_clip(record, ValidationConfig())
    assert paper.passed and paper.max_diff > 50 and paper.max_diff_frame == record.cut_frame_in_clip
    strict = validate_clip(record, ValidationConfig(mode="strict"))
    assert strict.passed and record.cut_frame_in_clip in (strict.redetected_frames or [])
    high = validate_clip(record, ValidationConfig(threshold=paper.max_diff + 1))
    assert not high.passed and high.reason == "below_threshold"
    assert f"{paper.max_diff:.1f}" in high.detail and "validation.threshold" in high.detail
    moved = validate_clip(dataclasses.replace(record, cut_frame_in_clip=record.cut_frame_in_clip + 10), ValidationConfig(mode="strict"))
    assert not moved.passed and moved.reason == "cut_not_redetected"
    assert f"[{record.cut_frame_in_clip}]" in moved.detail and str(record.cut_frame_in_clip + 10) in moved.detail
