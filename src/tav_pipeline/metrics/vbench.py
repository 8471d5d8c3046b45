"""The paper's four VBench dimensions, computed with the ``vbench`` package (0.1.5) itself.

The paper (section 5, Table 2) scores generated videos with VBench's **aesthetic quality**
(LAION aesthetic head on CLIP ViT-L/14 image features, mean frame score / 10), **overall
consistency** (ViCLIP video-text cosine similarity), **dynamic degree** (RAFT optical flow: a video
is dynamic when enough frame pairs move more than a size-dependent threshold; the group score is
the share of dynamic videos) and **imaging quality** (MUSIQ trained on SPAQ, 0-100 per frame).

Every number here comes out of vbench's own code path: :func:`evaluate_videos` calls
``VBench(device, ...).evaluate(videos_path, name, prompt_list={file: prompt},
dimension_list=..., local=True, mode="custom_input")``. Three things differ from running the
``vbench`` command:

- the device is ours (``cpu`` works: the ``vbench`` CLI forces CUDA, the Python API does not);
- the weights are checked first, so vbench never tries to ``wget`` a missing file: a missing file
  is a :class:`~tav_pipeline.errors.MissingAssetError` naming the file and the rule that provides
  it (``fetch_vbench_weights``, or ``build_standin_vbench_weights`` for stand-in weights);
- ``VBENCH_CACHE_DIR`` is set from config before vbench is first imported (vbench reads it once,
  at import).

Scales: vbench reports imaging quality per video on MUSIQ's 0-100 scale and divides only the
overall score by 100. Per-video tables keep the 0-100 value (column ``imaging_quality``); group
summaries and the tables report the overall score on the 0-1 scale, as the paper's Table 2 does.
Dynamic degree per video is a boolean (stored as 0/1); the group score is the share of dynamic
videos.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tav_pipeline.config import check_keys
from tav_pipeline.devices import resolve_device
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import GeneratedVideo, read_generated
from tav_pipeline.metrics.vbench_weights import (
    DIMENSIONS,
    FETCH_RULE,
    STANDIN_RULE,
    Weights,
    check_weights,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

VBENCH_VERSION = "0.1.5"
"""The vbench release this module was written against (its dimension code is called directly)."""

RAFT_MIN_SIDE = 128
"""Dynamic degree is undefined below this frame size (pixels, shorter side): RAFT's four-level
correlation pyramid shrinks a side of ``side / 8`` to one cell at the last level, where its bilinear
sampler divides by ``W - 1 = 0``; the flow is NaN and vbench silently calls the video static (and
under 64 px the pyramid's pooling fails outright). :func:`evaluate_videos` leaves such videos out
of dynamic degree and lists them in ``meta["dynamic_degree_undefined"]``."""



@dataclass(frozen=True)
class VBenchConfig:
    """``evaluate.vbench`` in config.yaml."""

    dimensions: tuple[str, ...] = DIMENSIONS
    cache_dir: str = "resources/vbench"
    """``VBENCH_CACHE_DIR``: the folder holding :data:`WEIGHT_FILES`."""
    weights: Weights = "official"
    """``official``: the published weights (rule ``fetch_vbench_weights``); ``standin``: random
    weights in the same formats (rule ``build_standin_vbench_weights``; numbers carry no meaning)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    max_videos: int = 0
    """Score only the first N videos of each (model, checkpoint, group); 0 scores all. Tables
    say when a subset was scored."""
    imaging_quality_preprocessing_mode: str = "longer"
    """vbench's resize rule before MUSIQ (``longer``: longer side at most 512, vbench's default)."""
    standin: dict[str, Any] = field(default_factory=dict)
    """Settings of the stand-in weights (:class:`~tav_pipeline.metrics.standin_weights.StandinConfig`)."""

    def __post_init__(self) -> None:
        unknown = [d for d in self.dimensions if d not in DIMENSIONS]
        if unknown:
            raise ConfigError("evaluate.vbench.dimensions", f"unknown {unknown}; this pipeline runs {list(DIMENSIONS)}")
        if not self.dimensions:
            raise ConfigError("evaluate.vbench.dimensions", "name at least one dimension")
        if self.weights not in ("official", "standin"):
            raise ConfigError("evaluate.vbench.weights", f"unknown value {self.weights!r}")
        if self.max_videos < 0:
            raise ConfigError("evaluate.vbench.max_videos", "must be >= 0")
        if self.imaging_quality_preprocessing_mode not in ("longer", "shorter", "shorter_centercrop", "None"):
            raise ConfigError("evaluate.vbench.imaging_quality_preprocessing_mode", f"unknown value {self.imaging_quality_preprocessing_mode!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VBenchConfig:
        check_keys("evaluate.vbench", d, cls)
        d = dict(d)
        if "dimensions" in d:
            d["dimensions"] = tuple(d["dimensions"])
        return cls(**d)

    @property
    def rule(self) -> str:
        """The rule that provides this config's weights."""
        return STANDIN_RULE if self.weights == "standin" else FETCH_RULE

    def ordered_dimensions(self) -> tuple[str, ...]:
        """The configured dimensions in the table's order."""
        return tuple(d for d in DIMENSIONS if d in self.dimensions)


def import_vbench(cache_dir: str | Path) -> Any:
    """Import ``vbench`` with ``VBENCH_CACHE_DIR`` set to ``cache_dir``.

    vbench reads the variable once, when ``vbench.utils`` is first imported, so one process can
    only use one cache folder.

    Raises:
        ConfigError: vbench was already imported with another cache folder.
    """
    wanted = Path(cache_dir).resolve()
    loaded = sys.modules.get("vbench.utils")
    if loaded is not None:
        current = Path(str(getattr(loaded, "CACHE_DIR", ""))).resolve()
        if current != wanted:
            raise ConfigError(
                "evaluate.vbench.cache_dir",
                f"vbench was already imported in this process with VBENCH_CACHE_DIR={current}; it reads the variable once",
            )
    os.environ["VBENCH_CACHE_DIR"] = str(wanted)
    import vbench

    return vbench


def raft_flow_undefined(width: int, height: int) -> bool:
    """True when RAFT's flow is NaN for frames of this size (see :data:`RAFT_MIN_SIDE`): after
    vbench pads to a multiple of 8, a side of fewer than ``2 * 64`` pixels leaves one cell at the
    pyramid's last level."""
    cells = min((width + 7) // 8, (height + 7) // 8)
    return cells // 8 < 2


@dataclass
class VBenchResult:
    """Scores of one (model, checkpoint, group)."""

    per_video: pd.DataFrame
    """One row per scored video: model, checkpoint, group, index, path, prompt and one column per
    dimension (imaging quality 0-100, dynamic degree 0/1)."""
    overall: dict[str, float | None]
    """vbench's overall score per dimension (imaging quality / 100, as in the paper's table);
    ``None`` for dynamic degree when no scored video is large enough for RAFT."""
    meta: dict[str, Any]
    """Videos in the group, videos scored, weights kind, device, seconds, vbench version."""

    def write(self, csv_path: str | Path, json_path: str | Path) -> None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        self.per_video.to_csv(csv_path, index=False)
        Path(json_path).write_text(json.dumps({"overall": self.overall, **self.meta}, indent=2) + "\n")


PER_VIDEO_KEYS = ["model", "checkpoint", "group", "index", "path", "prompt"]


def _stage(videos: Sequence[GeneratedVideo], folder: Path) -> dict[str, str]:
    """Link ``videos`` into an empty ``folder`` as ``{index}.mp4``; returns vbench's prompt_list."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    prompts: dict[str, str] = {}
    for v in videos:
        name = f"{v.index}.mp4"
        (folder / name).symlink_to(Path(v.path).resolve())
        prompts[name] = v.prompt
    return prompts


def evaluate_videos(
    videos: Sequence[GeneratedVideo],
    config: VBenchConfig,
    work_dir: str | Path,
    *,
    threads: int | None = None,
) -> VBenchResult:
    """Score videos of one (model, checkpoint, group) with vbench's ``custom_input`` mode.

    The videos (the first ``config.max_videos`` when set) are linked into ``work_dir/videos`` as
    ``{index}.mp4`` so that vbench sees exactly them; vbench's own JSON outputs are written to
    ``work_dir`` as well. Dynamic degree is computed only for videos large enough for RAFT
    (:func:`raft_flow_undefined`); the others get no value (NaN, listed in
    ``meta["dynamic_degree_undefined"]``) instead of vbench's NaN-flow "static" or its crash.

    Raises:
        MissingAssetError: a weight file is missing (see :func:`check_weights`).
        ConfigError: see :func:`import_vbench`.
    """
    import pandas as pd

    if not videos:
        raise ConfigError("evaluate.vbench", "no videos to score")
    dims = config.ordered_dimensions()
    kind = check_weights(config.cache_dir, dims, config.rule)
    ordered = sorted(videos, key=lambda v: v.index)
    chosen = ordered[: config.max_videos] if config.max_videos else ordered
    undefined: list[int] = []
    if "dynamic_degree" in dims:
        from tav_pipeline.video import probe

        for v in chosen:
            info = probe(v.path)
            if raft_flow_undefined(info.width, info.height):
                undefined.append(v.index)
        if undefined:
            log.warning(
                "dynamic degree is undefined for %d video(s) under %d px (RAFT's correlation pyramid collapses): "
                "left out, indices %s", len(undefined), RAFT_MIN_SIDE, undefined,
            )
    # one vbench run for every dimension on every chosen video, unless dynamic degree must skip some
    runs: list[tuple[str, list[str], list[GeneratedVideo]]] = []
    if undefined:
        rest = [d for d in dims if d != "dynamic_degree"]
        if rest:
            runs.append(("videos", rest, chosen))
        movable = [v for v in chosen if v.index not in undefined]
        if movable:
            runs.append(("videos_dynamic_degree", ["dynamic_degree"], movable))
    else:
        runs.append(("videos", list(dims), chosen))

    vb = import_vbench(config.cache_dir)
    import torch

    device = torch.device(resolve_device(config.device, key="evaluate.vbench.device"))
    if threads:
        torch.set_num_threads(int(threads))
    first = chosen[0]
    full_info = Path(vb.__file__).parent / "VBench_full_info.json"
    work = Path(work_dir)
    log.info("VBench %s on %d of %d video(s), dimensions %s, device %s, %s weights", _version("vbench") or VBENCH_VERSION, len(chosen), len(videos), list(dims), device, kind)
    rows: dict[int, dict[str, Any]] = {
        v.index: {"model": v.model, "checkpoint": v.checkpoint, "group": v.group, "index": v.index, "path": v.path, "prompt": v.prompt}
        for v in chosen
    }
    overall: dict[str, float | None] = {d: None for d in dims}
    started = time.perf_counter()
    for folder, run_dims, run_videos in runs:
        prompts = _stage(run_videos, work / folder)
        run_name = f"{first.model}_{first.checkpoint}_{first.group}" + ("" if folder == "videos" else "_dynamic_degree")
        # vbench prints progress to stdout: send it to stderr (the rule's log).
        with contextlib.redirect_stdout(sys.stderr):
            bench = vb.VBench(device, str(full_info), str(work))
            bench.evaluate(
                videos_path=str(work / folder),
                name=run_name,
                prompt_list=prompts,
                dimension_list=run_dims,
                local=True,
                mode="custom_input",
                imaging_quality_preprocessing_mode=config.imaging_quality_preprocessing_mode,
            )
        raw = json.loads((work / f"{run_name}_eval_results.json").read_text())
        for dim in run_dims:
            score, per_video = raw[dim]
            overall[dim] = float(score)
            for item in per_video:
                value = item["video_results"]
                rows[int(Path(item["video_path"]).stem)][dim] = float(int(value)) if isinstance(value, bool) else float(value)
    seconds = time.perf_counter() - started
    table = pd.DataFrame(list(rows.values()), columns=[*PER_VIDEO_KEYS, *dims]).sort_values("index", kind="stable")
    meta = {
        "model": first.model,
        "checkpoint": first.checkpoint,
        "group": first.group,
        "dimensions": list(dims),
        "videos": len(videos),
        "scored_videos": len(chosen),
        "weights": kind,
        "device": str(device),
        "seconds": round(seconds, 2),
        "vbench_version": _version("vbench"),
        "imaging_quality_scale": "per video 0-100; overall /100",
        "dynamic_degree_undefined": undefined,
    }
    log.info("VBench overall: %s (%.1f s)", {k: (None if v is None else round(v, 4)) for k, v in overall.items()}, seconds)
    return VBenchResult(per_video=table.reset_index(drop=True), overall=overall, meta=meta)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def evaluate_vbench_step(
    folder: str | Path,
    out_csv: str | Path,
    out_json: str | Path,
    vbench: dict[str, Any],
    model: str,
    checkpoint: str,
    work_dir: str | Path,
    threads: int | None = None,
) -> VBenchResult:
    """Rule ``evaluate_vbench``: score one (model, checkpoint, group) and write the per-video CSV
    and the group's JSON (overall scores and what was scored); ``folder`` is the generated group
    folder (or its ``prompts.json``)."""
    config = VBenchConfig.from_dict(vbench)
    videos = read_generated(folder, model=model, checkpoint=checkpoint)
    result = evaluate_videos(videos, config, work_dir, threads=threads)
    result.write(out_csv, out_json)
    return result
