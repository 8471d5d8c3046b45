"""Per-video segment tables and VBench results of known values, as the evaluation rules write them
(tests only): the inputs of the tables, the report and their tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tav_pipeline import tables
from tav_pipeline.metrics.segments import PER_VIDEO_COLUMNS


def segments_table(model: str, checkpoint: str, group: str, counts: list[int], prompts: list[str] | None = None, rejected: int = 0) -> pd.DataFrame:
    """A per-video segments table with the given scene counts (cuts at frame 16 of 32)."""
    requested = 1 if group == "A" else 2
    rows: list[dict[str, Any]] = []
    for i, n in enumerate(counts):
        rows.append({
            "model": model, "checkpoint": checkpoint, "group": group, "index": i, "path": f"{i}.mp4",
            "prompt": prompts[i] if prompts else f"p{i}", "status": "ok", "reason": "", "frames": 32, "fps": 8.0,
            "duration": 4.0, "cut_frames": ";".join(["16"] * (n - 1)), "cut_times": "", "segments": n,
            "requested_scenes": requested, "exact": n == requested, "first_cut_frame": 16 if n > 1 else None,
            "first_cut_time": 2.0 if n > 1 else None, "first_cut_position": 0.5 if n > 1 else None, "max_score": 40.0, "detector": "paper",
        })
    for j in range(rejected):
        rows.append({"model": model, "checkpoint": checkpoint, "group": group, "index": len(counts) + j, "path": "x.mp4", "prompt": prompts[len(counts) + j] if prompts else "p", "status": "rejected", "reason": "unreadable", "requested_scenes": requested, "detector": "paper"})
    return pd.DataFrame(rows, columns=PER_VIDEO_COLUMNS)


def vbench_json(model: str, checkpoint: str, group: str, *, scored: int = 4, videos: int = 4, weights: str = "official", dims: tuple[str, ...] = tables.VBENCH_METRICS) -> dict[str, Any]:
    overall = {"aesthetic_quality": 0.5, "overall_consistency": 0.05, "dynamic_degree": 0.25, "imaging_quality": 0.612}
    return {"overall": {d: overall[d] for d in dims}, "model": model, "checkpoint": checkpoint, "group": group, "dimensions": list(dims), "videos": videos, "scored_videos": scored, "weights": weights, "dynamic_degree_undefined": []}


CONFIG = tables.TablesConfig.from_dict({"table2": {"model": "osp"}, "table1": {"models": [{"name": "osp", "label": "Open-Sora-Plan", "paper": "OpenSora"}, {"name": "cog", "label": "CogVideoX", "paper": "CogVideo"}, {"name": "mine", "label": "Mine"}]}}, [16, 24])
