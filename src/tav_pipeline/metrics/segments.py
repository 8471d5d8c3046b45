"""Average segments: how many scenes a generated video has, counted with the project's cut detector.

The paper's headline metric (Tables 1 and 2) is the mean number of scenes per generated video.
A video's scene count is its number of detected cuts plus one (PySceneDetect's scene list has one
scene more than it has cuts; a video without a cut is one scene). The detector and its settings are
the data pipeline's (``cuts:`` in config.yaml); ``evaluate.segments`` may set another mode,
threshold or minimum scene length for generated video, which are shorter and lower-rate than
Panda-70M's (33 frames at 8 fps in the paper).

Beyond the paper, each video also gets the number of scenes its prompt asks for (1 for group A, 2
for groups B and C), whether the count is exactly right, and where its first cut falls (frame,
seconds and fraction of the video). Videos that cannot be decoded are kept as rows with
``status: rejected`` and a reason; they are left out of the averages and counted apart.

Input contract (written by the generation rules): ``results/generated/{model}/{checkpoint}/{group}/``
holds ``{i}.mp4`` and ``prompts.json`` = ``{"group": "A", "prompts": [...]}`` (index ``i`` ->
prompt).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from tav_pipeline.cuts import CutResult
from tav_pipeline.detectors import TransitionDetector, detect, detector_from_cuts, detector_type
from tav_pipeline.errors import BadVideoError, ConfigError, MissingAssetError, RecordError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REQUESTED_SCENES: dict[str, int] = {"A": 1, "B": 2, "C": 2}
"""Scenes each prompt group asks for (paper section 4: A single scene, B implied and C explicit transition)."""

GENERATE_RULE = "generate_videos"
"""The rule (another stage's) that writes ``results/generated/...``; named in missing-file errors."""

KEYS = ["model", "checkpoint", "group"]


@dataclass(frozen=True)
class GeneratedVideo:
    """One generated video and the prompt it was generated from."""

    model: str
    checkpoint: str
    """``baseline`` or ``epoch_{N}``."""
    group: str
    index: int
    path: str
    prompt: str


def read_generated(prompts_json: str | Path, *, model: str, checkpoint: str, check_files: bool = True) -> list[GeneratedVideo]:
    """The videos of one ``results/generated/{model}/{checkpoint}/{group}/`` folder.

    Arguments:
        prompts_json: the folder, or its ``prompts.json`` (``{"group": ..., "prompts": [...]}``);
            video ``i`` is ``{i}.mp4`` beside it.
        check_files: raise when a listed video is missing.

    Raises:
        MissingAssetError: ``prompts.json`` or a video it lists is missing.
        RecordError: ``prompts.json`` is malformed.
    """
    pj = Path(prompts_json)
    if pj.is_dir():
        pj = pj / "prompts.json"
    if not pj.is_file():
        raise MissingAssetError(pj, GENERATE_RULE)
    try:
        data = json.loads(pj.read_text(encoding="utf-8"))
        group = str(data["group"])
        prompts = [str(p) for p in data["prompts"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RecordError(pj, f"expected {{'group': ..., 'prompts': [...]}} ({exc})") from exc
    videos = []
    for i, prompt in enumerate(prompts):
        path = pj.parent / f"{i}.mp4"
        if check_files and not path.is_file():
            raise MissingAssetError(path, GENERATE_RULE, f"{pj} lists {len(prompts)} prompt(s)")
        videos.append(GeneratedVideo(model=model, checkpoint=checkpoint, group=group, index=i, path=str(path), prompt=prompt))
    return videos


def check_section(section: str, data: Mapping[str, Any], known: set[str]) -> None:
    """:func:`tav_pipeline.config.check_keys` for a section that is not one dataclass."""
    for key in data:
        if key not in known:
            raise ConfigError(f"{section}.{key}", f"unknown key; known keys: {sorted(known)}")


@dataclass(frozen=True)
class SegmentsConfig:
    """``evaluate.segments`` merged over ``cuts:``."""

    mode: str = "paper"
    """A detector mode of :mod:`tav_pipeline.detectors` (``paper``: the section-3 HSV detector)."""
    cuts: Mapping[str, Any] = field(default_factory=dict)
    """The ``cuts:`` section with the ``evaluate.segments`` overrides applied; the detector's
    settings come from it as in the data pipeline."""
    requested_scenes: Mapping[str, int] = field(default_factory=lambda: dict(REQUESTED_SCENES))

    def __post_init__(self) -> None:
        detector_type(self.mode, key="evaluate.segments.mode")
        self.detector()  # checks the settings now, not at the first video
        for group, n in self.requested_scenes.items():
            if int(n) < 1:
                raise ConfigError("evaluate.segments.requested_scenes", f"group {group}: must be >= 1")

    @classmethod
    def from_dict(cls, segments: Mapping[str, Any], cuts: Mapping[str, Any] | None = None) -> SegmentsConfig:
        """Build from ``evaluate.segments`` and the ``cuts:`` section.

        ``mode`` left ``None`` takes ``cuts.mode``; ``threshold`` and ``min_scene_len`` left ``None``
        take the ``cuts:`` values (they set the paper detector's keys, directly under ``cuts:``).
        """
        check_section("evaluate.segments", segments, {"mode", "threshold", "min_scene_len", "requested_scenes"})
        base = dict(cuts or {})
        mode = segments.get("mode") or base.get("mode") or "paper"
        for key in ("threshold", "min_scene_len"):
            if segments.get(key) is not None:
                base[key] = segments[key]
        base["mode"] = mode
        requested = dict(REQUESTED_SCENES)
        requested.update({str(k): int(v) for k, v in (segments.get("requested_scenes") or {}).items()})
        return cls(mode=str(mode), cuts=base, requested_scenes=requested)

    def detector(self) -> TransitionDetector:
        """A fresh detector of :attr:`mode` with its settings (one per video)."""
        return detector_from_cuts(self.cuts, self.mode)

    def requested(self, group: str) -> int:
        if group not in self.requested_scenes:
            raise ConfigError("evaluate.segments.requested_scenes", f"no entry for group {group!r}")
        return int(self.requested_scenes[group])

    def describe(self) -> dict[str, Any]:
        """Settings as plain values (for logs and the report)."""
        return {"mode": self.mode, "requested_scenes": dict(self.requested_scenes), **self.detector().record_settings()}


PER_VIDEO_COLUMNS = [
    "model", "checkpoint", "group", "index", "path", "prompt", "status", "reason",
    "frames", "fps", "duration", "cut_frames", "cut_times", "segments", "requested_scenes",
    "exact", "first_cut_frame", "first_cut_time", "first_cut_position", "max_score", "detector",
]
"""Columns of ``segments.csv`` (one row per video). ``cut_frames``/``cut_times`` are
``;``-separated; ``first_cut_position`` is the first cut's time as a fraction of the video."""


TEXT_COLUMNS = {"model": str, "checkpoint": str, "group": str, "path": str, "prompt": str, "status": str, "reason": str, "cut_frames": str, "cut_times": str, "detector": str}


def read_segments(path: str | Path) -> pd.DataFrame:
    """A ``segments.csv`` as :func:`evaluate_segments` wrote it (cut lists stay text)."""
    import pandas as pd

    table = pd.read_csv(path, dtype=TEXT_COLUMNS)
    return table.fillna({k: "" for k in ("reason", "cut_frames", "cut_times")})


def count_segments(video: GeneratedVideo, config: SegmentsConfig | None = None) -> dict[str, Any]:
    """Scenes in one generated video, with its cuts; a row of :data:`PER_VIDEO_COLUMNS`.
    ``config`` defaults to ``SegmentsConfig()`` (built per call: a default argument would build
    a detector when this module is imported).

    An unusable video gives ``status: rejected``, the :class:`BadVideoError` reason and no counts.
    """
    config = config or SegmentsConfig()
    requested = config.requested(video.group)
    row: dict[str, Any] = {
        "model": video.model, "checkpoint": video.checkpoint, "group": video.group, "index": video.index,
        "path": video.path, "prompt": video.prompt, "requested_scenes": requested, "detector": config.mode,
    }
    try:
        result: CutResult = detect(video.path, config.detector(), video=f"{video.model}/{video.checkpoint}/{video.group}/{video.index}")
    except BadVideoError as exc:
        log.warning("rejected: %s", exc)
        row.update(status="rejected", reason=exc.reason, cut_frames="", cut_times="")
        return row
    segments = len(result.cuts) + 1
    first = result.cuts[0] if result.cuts else None
    duration = result.duration or (result.frame_count / result.fps if result.fps else 0.0)
    row.update(
        status="ok",
        reason="",
        frames=result.frame_count,
        fps=round(result.fps, 6),
        duration=round(duration, 6),
        cut_frames=";".join(str(c.frame) for c in result.cuts),
        cut_times=";".join(f"{c.time:.6g}" for c in result.cuts),
        segments=segments,
        exact=segments == requested,
        first_cut_frame=first.frame if first else None,
        first_cut_time=first.time if first else None,
        first_cut_position=round(first.time / duration, 6) if first and duration > 0 else None,
        max_score=result.max_score,
    )
    return row


def evaluate_segments(videos: Sequence[GeneratedVideo], config: SegmentsConfig | None = None, *, progress: bool = True) -> pd.DataFrame:
    """:func:`count_segments` for each video; one row per video (:data:`PER_VIDEO_COLUMNS`)."""
    import pandas as pd

    config = config or SegmentsConfig()

    rows = [count_segments(v, config) for v in tqdm(videos, desc="segments", unit="video", disable=not progress, mininterval=1.0)]
    table = pd.DataFrame(rows, columns=PER_VIDEO_COLUMNS)
    return table


SUMMARY_COLUMNS = [
    "model", "checkpoint", "group", "videos", "unreadable", "average_segments", "segments_std",
    "requested_scenes", "exact_count_accuracy", "share_with_cut", "first_cut_position",
]


def summarise_segments(per_video: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, checkpoint, group): ``average_segments`` (the paper's metric, over
    readable videos), ``exact_count_accuracy`` (share of videos with exactly the requested number
    of scenes), ``share_with_cut`` and the mean ``first_cut_position`` of videos with a cut."""
    import pandas as pd

    rows = []
    for (model, checkpoint, group), part in per_video.groupby(KEYS, sort=False):
        ok = part[part["status"] == "ok"]
        segs = pd.to_numeric(ok["segments"], errors="coerce")
        pos = pd.to_numeric(ok["first_cut_position"], errors="coerce").dropna()
        rows.append({
            "model": model,
            "checkpoint": checkpoint,
            "group": group,
            "videos": int(len(ok)),
            "unreadable": int(len(part) - len(ok)),
            "average_segments": float(segs.mean()) if len(ok) else np.nan,
            "segments_std": float(segs.std(ddof=0)) if len(ok) else np.nan,
            "requested_scenes": int(part["requested_scenes"].iloc[0]),
            "exact_count_accuracy": float(ok["exact"].astype(bool).mean()) if len(ok) else np.nan,
            "share_with_cut": float((segs > 1).mean()) if len(ok) else np.nan,
            "first_cut_position": float(pos.mean()) if len(pos) else np.nan,
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def count_segments_step(folder: str | Path, out_csv: str | Path, segments: dict[str, Any], cuts: dict[str, Any], model: str, checkpoint: str) -> pd.DataFrame:
    """Rule ``count_segments``: the per-video scene counts of one (model, checkpoint, group);
    ``folder`` is the generated group folder (or its ``prompts.json``)."""
    config = SegmentsConfig.from_dict(segments, cuts)
    videos = read_generated(folder, model=model, checkpoint=checkpoint)
    if not videos:
        raise RecordError(folder, "lists no prompts")
    log.info("%s/%s/%s: %d video(s), detector %s", model, checkpoint, videos[0].group, len(videos), config.describe())
    table = evaluate_segments(videos, config)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    summary = summarise_segments(table)
    for row in summary.itertuples():
        log.info("%s/%s/%s: average segments %.3f over %d video(s), exact %.3f, %d unreadable", row.model, row.checkpoint, row.group, row.average_segments, row.videos, row.exact_count_accuracy, row.unreadable)
    return table
