"""The HTML report a researcher opens: Tables 1 and 2 next to the paper, the figures (inline),
per-video details, how to read the numbers, the run's settings and the software versions.

One self-contained file (images are ``data:`` URIs, styles inline), rendered with jinja2 from
``templates/report.html.j2``. The tables are built by :func:`tav_pipeline.tables.build_tables`
from the same summary as ``results/table{1,2}.csv``, so the report and the CSV files agree.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from tav_pipeline.config import check_keys
from tav_pipeline.metrics.segments import read_segments
from tav_pipeline.tables import METRICS, TABLE2_EXTRA, Tables, TablesConfig, build_tables, read_summary

log = logging.getLogger(__name__)

VERSIONED = (
    "tav-pipeline", "torch", "torchvision", "vbench", "pyiqa", "openai-clip", "decord", "timm", "numpy",
    "pandas", "opencv-python", "av", "scenedetect", "matplotlib", "jinja2", "snakemake", "transformers",
)
"""Distributions whose versions the report lists (absent ones are shown as not installed)."""

METRIC_LABELS = {
    "average_segments": "average segments",
    "aesthetic_quality": "aesthetic quality",
    "overall_consistency": "overall consistency",
    "dynamic_degree": "dynamic degree",
    "imaging_quality": "imaging quality",
}

READING_NOTES = (
    "Average segments = detected cuts + 1 per video (a video without a cut is one scene), averaged over the "
    "group's readable videos; the detector and its settings are listed under Settings (cuts, evaluate.segments).",
    "Requested scenes: 1 for group A, 2 for groups B and C. Exact-count accuracy is the share of videos with "
    "exactly that many scenes; first-cut position is where the first cut falls as a fraction of the video.",
    "Imaging quality: MUSIQ scores each frame on a 0-100 scale; per-video values stay on that scale and the "
    "group value is divided by 100, as vbench's overall score and the paper's Table 2 are.",
    "Dynamic degree: each video is dynamic or static (RAFT flow above 6 px per 256 px of frame size in enough "
    "frame pairs); the group value is the share of dynamic videos.",
    "Group A asks for one scene; if a post-trained checkpoint averages more than one there, it is reported as "
    "is (the paper's Table 2 shows the same for group A).",
)


@dataclass(frozen=True)
class ReportConfig:
    """``report:`` in config.yaml (``frame_strips`` is validated by
    :class:`tav_pipeline.figures.FrameStripConfig`)."""

    title: str = "Scene transition awareness: evaluation report"
    settings: tuple[str, ...] = ("cuts", "evaluate", "tables", "report", "train", "generate")
    """Config sections shown under Settings (missing ones are skipped)."""
    frame_strips: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportConfig:
        check_keys("report", d, cls)
        kwargs = dict(d)
        if "settings" in kwargs:
            kwargs["settings"] = tuple(kwargs["settings"])
        return cls(**kwargs)


def collect_versions(names: Sequence[str] = VERSIONED) -> dict[str, str]:
    """Python, the platform and the installed versions of ``names``."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def image_data_uri(path: str | Path) -> str:
    """A PNG as a ``data:`` URI, so the report is one file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _fmt(value: Any, decimals: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def _diff_class(diff: Any) -> str:
    if diff is None or (isinstance(diff, float) and math.isnan(diff)) or diff is pd.NA:
        return "na"
    return "up" if diff > 0 else "down" if diff < 0 else "same"


def _table2_rows(tables: Tables) -> list[dict[str, Any]]:
    comp = tables.table2_vs_paper
    rows = []
    for r in tables.table2.to_dict("records"):
        epoch = r["epoch"]
        cells = []
        for m in METRICS:
            hit = comp[(comp["model"] == r["model"]) & (comp["group"] == r["group"]) & (comp["metric"] == m) & ((comp["epoch"].isna()) if pd.isna(epoch) else (comp["epoch"] == epoch))]
            paper = hit.iloc[0]["paper"] if not hit.empty else float("nan")
            diff = hit.iloc[0]["difference"] if not hit.empty else float("nan")
            cells.append({"ours": _fmt(r[m]), "paper": _fmt(paper), "diff": _fmt(diff) if not pd.isna(diff) else "", "cls": _diff_class(diff)})
        rows.append({"model": r["model"], "group": r["group"], "epoch": _fmt(epoch), "cells": cells, "notes": r["notes"]})
    return rows


def _frame(df: pd.DataFrame, columns: Sequence[str] | None = None, decimals: int = 3) -> dict[str, Any]:
    cols = list(columns) if columns is not None else list(df.columns)
    return {"columns": cols, "rows": [[_fmt(v, decimals) for v in rec] for rec in df[cols].itertuples(index=False, name=None)]}


def render_report(
    out_html: str | Path,
    summary: pd.DataFrame,
    per_video: pd.DataFrame,
    tables_config: TablesConfig,
    figures: Sequence[tuple[str, str | Path]],
    *,
    settings: Mapping[str, Any] | None = None,
    title: str = ReportConfig.title,
    versions: Mapping[str, str] | None = None,
) -> Path:
    """Write the report.

    Arguments:
        summary: ``results/eval/summary.csv``.
        per_video: ``results/eval/per_video.csv``.
        figures: (caption, PNG path) pairs, shown in order.
        settings: config sections to show (as YAML).
    """
    import jinja2
    import yaml

    tables = build_tables(summary, tables_config)
    warnings = sorted({n for n in tables.table2["notes"].tolist() + tables.table1["notes"].tolist() for n in str(n).split("; ") if n})
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tav_pipeline.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    per_video_cols = [c for c in ("model", "checkpoint", "group", "index", "status", "reason", "segments", "requested_scenes", "exact", "cut_frames", "first_cut_position", "aesthetic_quality", "overall_consistency", "dynamic_degree", "imaging_quality_0_100", "prompt") if c in per_video.columns]
    html = template.render(
        title=title,
        generated=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        warnings=warnings,
        metric_labels=[METRIC_LABELS[m] for m in METRICS],
        table2_rows=_table2_rows(tables),
        # a notes column only when rows differ (notes shared by every row are in the banner)
        table2_notes=tables.table2["notes"].nunique() > 1,
        table2_extra=_frame(tables.table2, ["model", "group", "epoch", *[c for c in TABLE2_EXTRA if c != "notes"]]),
        table1=_frame(tables.table1.drop(columns=["notes"])),
        table1_vs_paper=_frame(tables.table1_vs_paper),
        figures=[{"caption": c, "uri": image_data_uri(p), "name": Path(p).name} for c, p in figures],
        per_video=_frame(per_video, per_video_cols),
        reading_notes=READING_NOTES,
        settings=yaml.safe_dump(dict(settings or {}), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100),
        versions=versions if versions is not None else collect_versions(),
        model=tables_config.model,
    )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    log.info("report written to %s (%.1f kB)", out, out.stat().st_size / 1e3)
    return out


def render_report_step(
    summary_csv: str | Path,
    per_video_csv: str | Path,
    chart_png: str | Path,
    strip_pngs: Sequence[str | Path],
    out_html: str | Path,
    tables: dict[str, Any],
    train_epochs: Sequence[int] | None,
    report: dict[str, Any],
    settings: Mapping[str, Any],
    train_model: str | None = None,
) -> Path:
    """Rule ``render_report``."""
    from tav_pipeline.figures import FrameStripConfig

    config = ReportConfig.from_dict(report)
    tables_config = TablesConfig.from_dict(tables, train_epochs, train_model)
    strips = FrameStripConfig.from_dict(config.frame_strips, tables_config.epochs)
    figures: list[tuple[str, str | Path]] = [("Average segments by prompt group and checkpoint, against the paper's Table 2.", chart_png)]
    for index, png in zip(strips.indices, strip_pngs):
        figures.append((f"Frames of group {strips.group} prompt {index}, one row per model (red bars: detected cuts), like the paper's Figures 1-2.", png))
    return render_report(
        out_html,
        read_summary(summary_csv),
        read_segments(per_video_csv),
        tables_config,
        figures,
        settings=settings,
        title=config.title,
    )
