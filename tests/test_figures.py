"""Frame strips and the average-segments chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _generated import COLOURS, write_group
from PIL import Image

from tav_pipeline import figures, tables
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import count_segments_step

RED = np.array([0xD6, 0x27, 0x28])


def _has_cut_red(png: Path) -> bool:
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return bool((np.abs(img - RED).sum(axis=-1) < 30).sum() > 50)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    write_group(root / "generated", "ea", "baseline", "C", [[], [16]], frames=33)
    write_group(root / "generated", "osp", "baseline", "C", [[], []], frames=33)
    write_group(root / "generated", "osp", "epoch_2", "C", [[16], [16]], frames=33)
    for model, checkpoint in (("ea", "baseline"), ("osp", "baseline"), ("osp", "epoch_2")):
        count_segments_step(root / "generated" / model / checkpoint / "C/prompts.json", root / "eval" / model / checkpoint / "C/segments.csv", {}, {}, model, checkpoint)
    segs = [pd.read_csv(p, dtype={"cut_frames": str}) for p in sorted((root / "eval").rglob("segments.csv"))]
    pd.concat(segs).to_csv(root / "per_video.csv", index=False)
    return root


def test_strip_indices_are_evenly_spaced() -> None:
    assert figures.strip_indices(33, 8) == [0, 5, 9, 14, 18, 23, 27, 32]
    assert figures.strip_indices(3, 8) == [0, 1, 2]
    assert figures.strip_indices(10, 1) == [5]
    assert figures.strip_indices(0, 4) == []


def test_strip_image_shows_the_frames_it_names(generated: Path) -> None:
    image, idx, n = figures.strip_image(generated / "generated/ea/baseline/C/1.mp4", frames=4, height=32)
    assert n == 33 and idx == [0, 11, 21, 32] and image.shape == (32, 4 * 32 + 3 * figures.GAP, 3)
    # the cut at frame 16 changes the scene colour: red-ish before, blue-ish after
    first, last = image[:, :32].reshape(-1, 3).mean(0), image[:, -32:].reshape(-1, 3).mean(0)
    assert np.argmax(first) == int(np.argmax(COLOURS[0])) and np.argmax(last) == int(np.argmax(COLOURS[1]))
    assert (image[:, 32:32 + figures.GAP] == 255).all()


def test_cut_marker_appears_only_where_a_cut_was_found(generated: Path, tmp_path: Path) -> None:
    with_cut = figures.plot_frame_strip([figures.StripVideo("A", str(generated / "generated/ea/baseline/C/1.mp4"), (16,), 2)], "a prompt", tmp_path / "cut.png", frames=6, height=48)
    without = figures.plot_frame_strip([figures.StripVideo("A", str(generated / "generated/ea/baseline/C/0.mp4"), (), 1)], "a prompt", tmp_path / "none.png", frames=6, height=48)
    assert _has_cut_red(with_cut) and not _has_cut_red(without)


def test_frame_strip_step_draws_one_row_per_configured_model(generated: Path, tmp_path: Path) -> None:
    strips = {"group": "C", "indices": [1], "frames": 5, "height": 40, "rows": [
        {"model": "ea", "checkpoint": "baseline", "label": "EasyAnimate"},
        {"model": "osp", "checkpoint": "baseline"},
        {"model": "osp", "checkpoint": "last_epoch"},
    ]}
    pjs = [generated / "generated/ea/baseline/C/prompts.json", generated / "generated/osp/baseline/C/prompts.json", generated / "generated/osp/epoch_2/C/prompts.json"]
    out = figures.frame_strip_step(pjs, generated / "per_video.csv", tmp_path / "strip.png", strips, 1, [1, 2])
    img = Image.open(out)
    assert img.height > 3 * 40 and img.width > 5 * 40
    with pytest.raises(ConfigError, match="index 7"):
        figures.frame_strip_step(pjs, generated / "per_video.csv", tmp_path / "x.png", strips, 7, [1, 2])
    with pytest.raises(ConfigError, match="last_epoch"):
        figures.FrameStripConfig.from_dict(strips)
    config = figures.FrameStripConfig.from_dict(strips, [1, 2])
    assert [r.checkpoint for r in config.rows] == ["baseline", "baseline", "epoch_2"]
    assert config.rows[1].label == "osp (baseline)" and config.rows[2].label == "osp (epoch 2)"


def test_average_segments_chart(tmp_path: Path) -> None:
    rows = []
    for checkpoint, value in (("baseline", 1.1), ("epoch_16", 1.8), ("epoch_24", 2.5)):
        for group in "ABC":
            rows.append({"model": "osp", "checkpoint": checkpoint, "group": group, "average_segments": value, "exact_count_accuracy": 0.5, "requested_scenes": 1 if group == "A" else 2})
    config = tables.TablesConfig.from_dict({"table2": {"model": "osp"}}, [16, 24])
    out = figures.plot_average_segments(pd.DataFrame(rows), config, tmp_path / "chart.png")
    img = Image.open(out)
    assert img.size == (1100, 420)
    # an all-missing checkpoint still draws (bars left empty), it does not raise
    figures.plot_average_segments(pd.DataFrame(rows[:3]), config, tmp_path / "partial.png")
    assert (tmp_path / "partial.png").stat().st_size > 10_000
