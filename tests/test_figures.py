"""Frame strips and the average-segments chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _generated import COLOURS, write_group
from matplotlib.collections import LineCollection, PathCollection
from PIL import Image

from tav_pipeline import figures, tables
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import count_segments_step, read_segments

RED = np.array([0xD6, 0x27, 0x28])
plt = figures._pyplot()  # matplotlib on the Agg backend


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


def _cut_lines(ax: Any) -> list[float]:
    """x positions of the red cut markers drawn on a strip row."""
    return [float(line.get_xdata()[0]) for line in ax.lines if line.get_color() == figures.CUT_COLOUR]


def test_frame_strip_step_draws_one_row_per_configured_model(generated: Path, tmp_path: Path) -> None:
    strips = {"group": "C", "indices": [1], "frames": 5, "height": 40, "rows": [
        {"model": "ea", "checkpoint": "baseline", "label": "EasyAnimate"},
        {"model": "osp", "checkpoint": "baseline"},
        {"model": "osp", "checkpoint": "last_epoch"},
    ]}
    pjs = [generated / "generated/ea/baseline/C/prompts.json", generated / "generated/osp/baseline/C/prompts.json", generated / "generated/osp/epoch_2/C/prompts.json"]
    config = figures.FrameStripConfig.from_dict(strips, [1, 2])
    assert [r.checkpoint for r in config.rows] == ["baseline", "baseline", "epoch_2"]
    # each row: its own video of prompt 1 and the cuts the segment counter found in it
    prompt, videos = figures.strip_videos(pjs, read_segments(generated / "per_video.csv"), config, 1)
    assert prompt == "prompt 1 of group C"
    assert [v.label for v in videos] == ["EasyAnimate", "osp (baseline)", "osp (epoch 2)"]
    assert [Path(v.path).relative_to(generated / "generated").as_posix() for v in videos] == ["ea/baseline/C/1.mp4", "osp/baseline/C/1.mp4", "osp/epoch_2/C/1.mp4"]
    assert [(v.cut_frames, v.segments) for v in videos] == [((16,), 2), ((), 1), ((16,), 2)]
    # the figure: one row per video top to bottom, its thumbnails, a red line before frame 16's
    # thumbnail where a cut was found, the frame numbers and the scene count
    fig = figures.draw_frame_strip(videos, prompt, frames=5, height=40, title="group C, prompt 1")
    try:
        rows = sorted(fig.axes, key=lambda ax: -ax.get_position().y0)
        assert len(rows) == 3
        for ax, video in zip(rows, videos):
            image, idx, _ = figures.strip_image(video.path, 5, 40)
            assert np.array_equal(ax.get_images()[0].get_array(), image)
            assert [t.get_text() for t in ax.texts] == [str(f) for f in idx] == ["0", "8", "16", "24", "32"]
        thumb = (image.shape[1] - 4 * figures.GAP) / 5
        cut_x = 2 * (thumb + figures.GAP) - figures.GAP / 2 - 0.5
        assert [_cut_lines(ax) for ax in rows] == [[cut_x], [], [cut_x]]
        texts = [t.get_text() for t in fig.texts]
        assert texts[0].startswith("group C, prompt 1\n“prompt 1 of group C”")
        assert texts[1:] == ["EasyAnimate\n2 scenes detected", "osp (baseline)\n1 scene detected", "osp (epoch 2)\n2 scenes detected"]
    finally:
        plt.close(fig)
    out = figures.frame_strip_step(pjs, generated / "per_video.csv", tmp_path / "strip.png", strips, 1, [1, 2])
    assert Image.open(out).size == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi))
    with pytest.raises(ConfigError, match="index 7"):
        figures.frame_strip_step(pjs, generated / "per_video.csv", tmp_path / "x.png", strips, 7, [1, 2])
    with pytest.raises(ConfigError, match="last_epoch"):
        figures.FrameStripConfig.from_dict(strips)
    assert config.rows[1].label == "osp (baseline)" and config.rows[2].label == "osp (epoch 2)"


def _summary(values: dict[str, float]) -> pd.DataFrame:
    # another model's rows come first; they are not Table 2's and are not drawn
    rows: list[dict[str, Any]] = [{"model": "cog", "checkpoint": "baseline", "group": "A", "average_segments": 9.0, "exact_count_accuracy": 0.0, "requested_scenes": 1}]
    for checkpoint, value in values.items():
        for group in "ABC":
            rows.append({"model": "osp", "checkpoint": checkpoint, "group": group, "average_segments": value + (0.1 if group == "C" else 0.0), "exact_count_accuracy": 0.5 if group == "A" else 0.25, "requested_scenes": 1 if group == "A" else 2})
    return pd.DataFrame(rows)


def test_average_segments_chart(tmp_path: Path) -> None:
    config = tables.TablesConfig.from_dict({"table2": {"model": "osp"}}, [16, 24])
    paper = tables.paper_table2()
    data = figures.average_segments_data(_summary({"baseline": 1.1, "epoch_16": 1.8, "epoch_24": 2.5}), config)
    assert list(data["checkpoint"]) == ["baseline"] * 3 + ["epoch_16"] * 3 + ["epoch_24"] * 3
    assert list(data["group"]) == list("ABC") * 3
    assert data["average_segments"].tolist() == pytest.approx([1.1, 1.1, 1.2, 1.8, 1.8, 1.9, 2.5, 2.5, 2.6])
    # the paper's Table 2 at the same epoch (baseline: the row without an epoch)
    expected_paper = [float(paper[(paper["group"] == g) & (paper["epoch"].isna() if e is None else paper["epoch"] == e)]["average_segments"].iloc[0]) for e in (None, 16, 24) for g in "ABC"]
    assert data["paper"].tolist() == expected_paper
    assert data["paper"].tolist() == [1.18, 1.06, 1.12, 1.84, 1.80, 1.74, 2.38, 2.70, 2.90]  # paper_table2.csv
    fig = figures.draw_average_segments(data, config)
    try:
        ax, ax2 = fig.axes
        assert [b.get_height() for b in ax.patches] == pytest.approx(data["average_segments"].tolist())
        assert [b.get_height() for b in ax2.patches] == pytest.approx([0.5, 0.25, 0.25] * 3)
        diamonds = [float(y) for c in ax.collections if isinstance(c, PathCollection) for y in c.get_offsets()[:, 1]]
        assert diamonds == pytest.approx(expected_paper)
        dashed = [float(seg[0][1]) for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
        assert dashed == [1.0, 2.0, 2.0]
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["baseline", "epoch 16", "epoch 24", "paper (Table 2)", "requested scenes"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["group A", "group B", "group C"]
    finally:
        plt.close(fig)
    out = figures.plot_average_segments(_summary({"baseline": 1.1, "epoch_16": 1.8, "epoch_24": 2.5}), config, tmp_path / "chart.png")
    assert Image.open(out).size == (1100, 420)
    # an all-missing checkpoint is drawn as empty (NaN) bars, it does not raise
    partial = figures.average_segments_data(_summary({"baseline": 1.1}), config)
    assert partial["average_segments"].isna().tolist() == [False] * 3 + [True] * 6
    assert partial["paper"].tolist() == expected_paper
    figures.plot_average_segments(_summary({"baseline": 1.1}), config, tmp_path / "partial.png")
    assert Image.open(tmp_path / "partial.png").size == (1100, 420)
