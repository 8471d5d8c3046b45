"""Figures: frame strips like the paper's Figures 1-2, and average segments against the paper.

- :func:`plot_frame_strip`: several evenly spaced frames per video, one row per model or
  checkpoint, the prompt as the title; a red bar marks where the cut detector found a cut and each
  row says how many scenes it counted.
- :func:`plot_average_segments`: average segments by prompt group for the baseline and each
  epoch (bars), the paper's Table 2 values (black diamonds) and the number of scenes each group
  asks for (dashed); a second panel shows exact-count accuracy (beyond the paper).

Frames are read through :mod:`tav_pipeline.video`; figures are written with matplotlib's Agg
backend, so no display is needed.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError
from tav_pipeline.tables import TablesConfig, checkpoint_epoch, paper_table2, read_summary
from tav_pipeline.video import count_frames, frames_at

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CUT_COLOUR = "#d62728"
GAP = 4
"""Pixels between thumbnails."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def checkpoint_label(checkpoint: str) -> str:
    """``baseline`` -> ``baseline``; ``epoch_24`` -> ``epoch 24``."""
    epoch = checkpoint_epoch(checkpoint)
    return "baseline" if epoch is None else f"epoch {epoch}"


@dataclass(frozen=True)
class StripRow:
    """One row of a frame strip: a (model, checkpoint) and its label."""

    model: str
    checkpoint: str
    label: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], epochs: Sequence[int] = ()) -> StripRow:
        """``checkpoint`` may be ``last_epoch``: the largest of ``epochs`` (Table 2's)."""
        check_keys("report.frame_strips.rows", d, cls)
        if not d.get("model") or not d.get("checkpoint"):
            raise ConfigError("report.frame_strips.rows", "every row needs model and checkpoint")
        checkpoint = str(d["checkpoint"])
        if checkpoint == "last_epoch":
            if not epochs:
                raise ConfigError("report.frame_strips.rows", "checkpoint last_epoch needs Table 2's epochs")
            checkpoint = f"epoch_{max(int(e) for e in epochs)}"
        checkpoint_epoch(checkpoint)  # validates the name
        label = str(d.get("label") or f"{d['model']} ({checkpoint_label(checkpoint)})")
        return cls(model=str(d["model"]), checkpoint=checkpoint, label=label)


@dataclass(frozen=True)
class FrameStripConfig:
    """``report.frame_strips`` in config.yaml: one figure per prompt index."""

    group: str = "C"
    indices: tuple[int, ...] = (3, 1)
    """Prompt indices (0-based) to draw; the paper's Figures 1 and 2 show its printed prompts 4
    and 2 (girl in front of a tree; tents in the woods)."""
    frames: int = 8
    height: int = 96
    """Thumbnail height in pixels."""
    rows: tuple[StripRow, ...] = (
        StripRow("easyanimate", "baseline", "EasyAnimate"),
        StripRow("opensora_plan", "baseline", "Open-Sora-Plan (baseline)"),
        StripRow("opensora_plan", "epoch_24", "Open-Sora-Plan (24 epochs)"),
    )
    """One row per (model, checkpoint), top to bottom: the paper's Figures 1-2 show EasyAnimate,
    then Open-Sora-Plan before and after 24 epochs of post-training."""

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ConfigError("report.frame_strips.frames", "must be >= 1")
        if self.height < 8:
            raise ConfigError("report.frame_strips.height", "must be >= 8")
        if any(i < 0 for i in self.indices):
            raise ConfigError("report.frame_strips.indices", "indices are >= 0")

    def keys(self) -> list[tuple[str, str, str]]:
        """(model, checkpoint, group) of each row, top to bottom."""
        return [(row.model, row.checkpoint, self.group) for row in self.rows]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], epochs: Sequence[int] = ()) -> FrameStripConfig:
        """``epochs`` (Table 2's) resolve a row's ``last_epoch``."""
        check_keys("report.frame_strips", d, cls)
        kwargs: dict[str, Any] = {k: v for k, v in d.items() if k not in ("indices", "rows")}
        if "indices" in d:
            kwargs["indices"] = tuple(int(i) for i in d["indices"])
        if "rows" in d:
            kwargs["rows"] = tuple(StripRow.from_dict(r, epochs) for r in d["rows"])
        return cls(**kwargs)


def strip_indices(n_frames: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices from first to last (fewer when the video is shorter)."""
    if n_frames <= 0:
        return []
    k = min(k, n_frames)
    if k == 1:
        return [n_frames // 2]
    return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, k)})


def strip_image(path: str | Path, frames: int, height: int) -> tuple[np.ndarray, list[int], int]:
    """Thumbnails of ``frames`` evenly spaced frames side by side (RGB, ``height`` px high, white
    gaps). Returns ``(image, frame indices, frame count)``."""
    import cv2

    n = count_frames(path)
    idx = strip_indices(n, frames)
    thumbs = []
    for img in frames_at(path, idx, pixel_format="rgb24"):
        h, w = img.shape[:2]
        width = max(1, round(w * height / h))
        thumbs.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    width = thumbs[0].shape[1]
    canvas = np.full((height, len(thumbs) * width + (len(thumbs) - 1) * GAP, 3), 255, np.uint8)
    for j, t in enumerate(thumbs):
        canvas[:, j * (width + GAP): j * (width + GAP) + t.shape[1]] = t[:, :width]
    return canvas, idx, n


@dataclass(frozen=True)
class StripVideo:
    """A video to draw in a strip row, with the cuts the detector found (first frames of new scenes)."""

    label: str
    path: str
    cut_frames: tuple[int, ...] = ()
    segments: int | None = None


def draw_frame_strip(videos: Sequence[StripVideo], prompt: str, *, frames: int = 8, height: int = 96, title: str = "") -> Any:
    """The matplotlib figure of :func:`plot_frame_strip`: one axes per video (top to bottom), its
    thumbnails as the image, a red vertical line per drawn cut, the frame numbers and the row
    label (with the scene count) as texts."""
    plt = _pyplot()
    strips = [strip_image(v.path, frames, height) for v in videos]
    width_px = max(s[0].shape[1] for s in strips)
    label_px = 230
    dpi = 100
    title_lines = textwrap.wrap(f"“{prompt}”", 100) or [""]
    head_px = 24 * (len(title_lines) + (1 if title else 0)) + 16
    row_px = height + 26
    fig = plt.figure(figsize=((width_px + label_px + 20) / dpi, (head_px + row_px * len(videos)) / dpi), dpi=dpi)
    text = "\n".join(([title] if title else []) + title_lines)
    fig.text(0.5, 1 - 8 / (head_px + row_px * len(videos)), text, ha="center", va="top", fontsize=11)
    total_h = head_px + row_px * len(videos)
    for r, (video, (image, idx, _)) in enumerate(zip(videos, strips)):
        bottom = total_h - head_px - (r + 1) * row_px + 18
        ax = fig.add_axes(((label_px) / (width_px + label_px + 20), bottom / total_h, image.shape[1] / (width_px + label_px + 20), height / total_h))
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        thumb_w = (image.shape[1] - (len(idx) - 1) * GAP) / max(len(idx), 1)
        for cut in video.cut_frames:
            j = next((k for k, f in enumerate(idx) if f >= cut), None)
            if j is None or j == 0:
                continue
            x = j * (thumb_w + GAP) - GAP / 2
            ax.axvline(x - 0.5, color=CUT_COLOUR, linewidth=3)
        for j, f in enumerate(idx):
            ax.text(j * (thumb_w + GAP) + thumb_w / 2, height + 2, str(f), ha="center", va="top", fontsize=7, color="#555")
        scenes = "" if video.segments is None else f"\n{video.segments} scene{'s' if video.segments != 1 else ''} detected"
        fig.text(8 / (width_px + label_px + 20), (bottom + height / 2) / total_h, f"{video.label}{scenes}", ha="left", va="center", fontsize=9)
    return fig


def plot_frame_strip(videos: Sequence[StripVideo], prompt: str, out: str | Path, *, frames: int = 8, height: int = 96, title: str = "") -> Path:
    """One row of thumbnails per video, the prompt as the title; a red bar sits in the gap
    before the first thumbnail at or after each detected cut."""
    return _save(draw_frame_strip(videos, prompt, frames=frames, height=height, title=title), out)


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=fig.dpi)
    _pyplot().close(fig)
    return out


AVERAGE_SEGMENTS_COLUMNS = ["checkpoint", "group", "average_segments", "exact_count_accuracy", "paper", "requested_scenes"]


def average_segments_data(summary: pd.DataFrame, config: TablesConfig, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """What :func:`plot_average_segments` draws: one row per (checkpoint, group) of ``config`` in
    drawing order (:data:`AVERAGE_SEGMENTS_COLUMNS`); ours from ``summary`` (Table 2's model),
    ``paper`` from the paper's Table 2 at the same epoch, NaN where either has no value."""
    import pandas as pd

    paper = paper_table2() if paper is None else paper
    rows = []
    for checkpoint in config.checkpoints:
        epoch = checkpoint_epoch(checkpoint)
        for g in config.groups:
            hit = summary[(summary["model"] == config.model) & (summary["checkpoint"] == checkpoint) & (summary["group"] == g)]
            p = paper[(paper["group"] == g) & ((paper["epoch"].isna()) if epoch is None else (paper["epoch"] == epoch))]
            first = hit.iloc[0] if not hit.empty else None
            rows.append(
                {
                    "checkpoint": checkpoint,
                    "group": g,
                    "average_segments": np.nan if first is None else float(first["average_segments"]),
                    "exact_count_accuracy": np.nan if first is None else float(first["exact_count_accuracy"]),
                    "paper": float(p["average_segments"].iloc[0]) if not p.empty else np.nan,
                    "requested_scenes": np.nan if first is None else float(first["requested_scenes"]),
                }
            )
    return pd.DataFrame(rows, columns=AVERAGE_SEGMENTS_COLUMNS)


def draw_average_segments(data: pd.DataFrame, config: TablesConfig) -> Any:
    """The matplotlib figure of :func:`plot_average_segments` from :func:`average_segments_data`:
    left axes one bar per row (checkpoint-major), the paper's values as one scatter per checkpoint
    that has any, the requested scenes as dashed lines; right axes the exact-count accuracy bars."""
    plt = _pyplot()
    groups = list(config.groups)
    checkpoints = list(config.checkpoints)
    colours = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(checkpoints)))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(checkpoints)
    x = np.arange(len(groups))
    paper_drawn = False
    for c, (checkpoint, colour) in enumerate(zip(checkpoints, colours)):
        rows = data[data["checkpoint"] == checkpoint].set_index("group").reindex(groups)
        ours = rows["average_segments"].to_numpy(float)
        theirs = rows["paper"].to_numpy(float)
        pos = x - 0.4 + width * (c + 0.5)
        ax.bar(pos, ours, width * 0.92, color=colour, label=checkpoint_label(checkpoint))
        ax2.bar(pos, rows["exact_count_accuracy"].to_numpy(float), width * 0.92, color=colour)
        for px, v in zip(pos, ours):
            if np.isfinite(v):
                ax.text(px, v + 0.03, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        if np.isfinite(theirs).any():
            ax.scatter(pos, theirs, marker="D", color="black", s=22, zorder=3, label=None if paper_drawn else "paper (Table 2)")
            paper_drawn = True
    requested = data.dropna(subset=["requested_scenes"]).drop_duplicates("group").set_index("group")["requested_scenes"]
    for i, g in enumerate(groups):
        if g in requested.index:
            ax.hlines(float(requested[g]), i - 0.45, i + 0.45, colors="#888", linestyles="dashed", linewidth=1, label="requested scenes" if i == 0 else None)
    ax.set_xticks(x, [f"group {g}" for g in groups])
    ax.set_ylabel("average segments per video")
    ax.set_title("Average segments (ours: bars; paper: diamonds)", fontsize=10)
    ymax = np.nanmax([*data["average_segments"].tolist(), *data["paper"].tolist(), 2.0])
    ax.set_ylim(0, ymax * 1.18 + 0.1)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax2.set_xticks(x, [f"group {g}" for g in groups])
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share of videos")
    ax2.set_title("Exact scene count (beyond the paper)", fontsize=10)
    fig.suptitle(f"{config.model}: baseline and post-trained checkpoints", fontsize=11)
    fig.tight_layout()
    return fig


def plot_average_segments(summary: pd.DataFrame, config: TablesConfig, out: str | Path, paper: pd.DataFrame | None = None) -> Path:
    """Average segments by group (bars per checkpoint) against the paper's Table 2, and exact-count
    accuracy; see the module docstring."""
    return _save(draw_average_segments(average_segments_data(summary, config, paper), config), out)


# ------------------------------------------------------------------------------ workflow steps


def strip_videos(
    folders: Sequence[str | Path], per_video: pd.DataFrame, config: FrameStripConfig, index: int
) -> tuple[str, list[StripVideo]]:
    """The prompt of prompt ``index`` and one :class:`StripVideo` per configured row: its video in
    the row's generated folder (``folders``, in the rows' order) and the cuts and scene count that
    ``per_video`` (``results/eval/per_video.csv``) records for it."""
    from tav_pipeline.metrics.segments import read_generated

    if len(folders) != len(config.rows):
        raise ConfigError("report.frame_strips.rows", f"{len(config.rows)} row(s) but {len(folders)} folder(s)")
    videos = []
    prompt = ""
    for row, pj in zip(config.rows, folders):
        generated = read_generated(pj, model=row.model, checkpoint=row.checkpoint)
        if index >= len(generated):
            raise ConfigError("report.frame_strips.indices", f"index {index} but {pj} lists {len(generated)} prompt(s)")
        video = generated[index]
        prompt = prompt or video.prompt
        if video.prompt != prompt:
            log.warning("row %s was generated from another prompt: %r", row.label, video.prompt)
        hit = per_video[(per_video["model"] == row.model) & (per_video["checkpoint"] == row.checkpoint) & (per_video["group"] == video.group) & (per_video["index"] == index)]
        cuts: tuple[int, ...] = ()
        segments = None
        if not hit.empty and hit.iloc[0]["status"] == "ok":
            cuts = tuple(int(float(c)) for c in str(hit.iloc[0]["cut_frames"]).split(";") if c)
            segments = int(hit.iloc[0]["segments"])
        videos.append(StripVideo(label=row.label, path=video.path, cut_frames=cuts, segments=segments))
    return prompt, videos


def frame_strip_step(
    folders: Sequence[str | Path],
    per_video_csv: str | Path,
    out_png: str | Path,
    strips: dict[str, Any],
    index: int,
    epochs: Sequence[int] = (),
) -> Path:
    """Rule ``plot_frame_strip``: the strip of prompt ``index`` for the configured rows.

    ``folders`` are the rows' generated group folders (or their ``prompts.json``), in the rows'
    order; ``epochs`` are Table 2's (for ``last_epoch`` rows).
    """
    from tav_pipeline.metrics.segments import read_segments

    config = FrameStripConfig.from_dict(strips, epochs)
    prompt, videos = strip_videos(folders, read_segments(per_video_csv), config, index)
    return plot_frame_strip(videos, prompt, out_png, frames=config.frames, height=config.height, title=f"group {config.group}, prompt {index}")


def average_segments_step(summary_csv: str | Path, out_png: str | Path, tables: dict[str, Any], train_epochs: Sequence[int] | None, train_model: str | None = None) -> Path:
    """Rule ``plot_average_segments``."""
    return plot_average_segments(read_summary(summary_csv), TablesConfig.from_dict(tables, train_epochs, train_model), out_png)
