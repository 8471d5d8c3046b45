"""The trainer's annotation: ``data.txt`` read back, upstream's dataset filter repeated before
launching (so the steps of an epoch are known), and the annotation JSON written."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tav_pipeline.backends.opensora.upstream import (
    AE_STRIDES,
    ASPECT_THRESHOLD,
    BUCKET_MIN_PER_BATCH,
    MIN_FRAMES,
    TOO_LONG_FACTOR,
)
from tav_pipeline.errors import ConfigError, MissingAssetError, RecordError
from tav_pipeline.train.config import TrainConfig
from tav_pipeline.train.frames import resampled_indices, window_length

log = logging.getLogger(__name__)

@dataclass
class AnnotationPlan:
    """Which annotation items the trainer will use, and why the others would be skipped."""

    items: list[dict[str, Any]]
    rejected: list[dict[str, Any]] = field(default_factory=list)
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def usable(self) -> int:
        return len(self.items)


def read_data_txt(path: str | Path) -> list[tuple[str, str]]:
    """``VIDEO_ROOT,ANNOTATION_JSON`` lines of Open-Sora-Plan's ``--data`` file."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) != 2:
            raise RecordError(path, f"line {n}: expected 'VIDEO_ROOT,ANNOTATION_JSON', got {line!r}")
        rows.append((parts[0], parts[1]))
    if not rows:
        raise RecordError(path, "names no annotation")
    return rows


def plan_annotation(rows: Sequence[tuple[str, str]], cfg: TrainConfig) -> AnnotationPlan:
    """Repeat Open-Sora-Plan's dataset filter on the annotation(s) of ``--data``.

    Arguments:
        rows: ``(video_root, annotation_json)`` pairs from :func:`read_data_txt`.
        cfg: the ``train:`` settings (``num_gpus`` processes share a shape bucket's batches).

    Returns:
        the items that will train (paths made absolute) and the skipped ones with reasons.

    Raises:
        ConfigError: an item lacks ``fps`` or ``num_frames`` (the reader needs them), or
            ``unusable_clips: error`` and some item would be skipped.
        MissingAssetError: an annotation or a video is missing.
    """
    stride_t = AE_STRIDES[cfg.opensora.ae][0]
    aspect = cfg.height / cfg.width
    kept: list[tuple[dict[str, Any], str]] = []
    rejected: list[dict[str, Any]] = []
    for root, annotation in rows:
        if not Path(annotation).is_file():
            raise MissingAssetError(annotation, "build_tav", "the Open-Sora-Plan annotation")
        for item in json.loads(Path(annotation).read_text()):
            item = dict(item)
            path = os.path.join(root, str(item.get("path", "")))
            item["path"] = str(Path(path).resolve())
            name = item["path"]
            if item.get("cap") is None:
                rejected.append({"path": name, "reason": "no_caption"})
                continue
            res = item.get("resolution") or {}
            if res.get("height") is None or res.get("width") is None:
                rejected.append({"path": name, "reason": "no_resolution"})
                continue
            h, w = int(res["height"]), int(res["width"])
            if not (aspect / ASPECT_THRESHOLD <= h / w <= aspect * ASPECT_THRESHOLD):
                rejected.append({"path": name, "reason": "aspect_ratio", "detail": f"{w}x{h}"})
                continue
            if not name.endswith(".mp4"):
                rejected.append({"path": name, "reason": "not_mp4"})
                continue
            for key in ("fps", "num_frames"):
                if item.get(key) is None:
                    raise RecordError(
                        annotation,
                        f"{name}: the item has no {key!r}; Open-Sora-Plan's reader needs it (rule build_tav writes it)",
                    )
            fps, frames = float(item["fps"]), int(item["num_frames"])
            if frames > TOO_LONG_FACTOR * (cfg.num_frames * fps / cfg.fps):
                rejected.append({"path": name, "reason": "too_long", "detail": f"{frames} frames"})
                continue
            n = len(resampled_indices(frames, fps, cfg.fps))
            if n < cfg.num_frames and cfg.drop_short_ratio >= 1.0:
                rejected.append(
                    {"path": name, "reason": "shorter_than_num_frames", "detail": f"{n} frames at {cfg.fps} fps"}
                )
                continue
            length = window_length(n, cfg.num_frames, MIN_FRAMES, stride_t)
            if length == 0:
                rejected.append(
                    {"path": name, "reason": "too_short", "detail": f"{n} frames at {cfg.fps} fps (needs {MIN_FRAMES})"}
                )
                continue
            if not Path(name).is_file():
                raise MissingAssetError(name, "extract_clip", "a clip named in the Open-Sora-Plan annotation")
            kept.append((item, f"{length}x{cfg.height}x{cfg.width}"))
    small = [str(item["path"]) for item, _ in kept if item["resolution"]["height"] < cfg.height or item["resolution"]["width"] < cfg.width]
    if small:
        log.warning("%d clip(s) are smaller than %dx%d and will be upscaled: %s", len(small), cfg.width, cfg.height, ", ".join(small))
    counts = Counter(shape for _, shape in kept)
    minimum = BUCKET_MIN_PER_BATCH * cfg.global_batch_size
    items = []
    for item, shape in kept:
        if counts[shape] >= minimum:
            items.append(item)
        else:
            rejected.append(
                {
                    "path": item["path"],
                    "reason": "small_bucket",
                    "detail": f"{shape} has {counts[shape]} clip(s), needs {minimum}",
                }
            )
    plan = AnnotationPlan(items, rejected, {k: v for k, v in counts.items() if v >= minimum})
    for r in rejected:
        log.warning("Open-Sora-Plan would skip %s: %s %s", r["path"], r["reason"], r.get("detail", ""))
    if rejected and cfg.opensora.unusable_clips == "error":
        raise ConfigError(
            "train.opensora.unusable_clips",
            f"{len(rejected)} clip(s) would be skipped by the trainer (see the log); set unusable_clips: drop to leave them out",
        )
    if not items:
        raise ConfigError("train", "no clip of the annotation survives Open-Sora-Plan's filter")
    return plan


def annotation_items(plan: AnnotationPlan, repeat: int = 1, order_seed: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The items of one launch's annotation: ``repeat`` copies of the plan's items, in the plan's
    order (``order_seed`` ``None``: v1.3.1's fixed sampler then gives every launch the same clip
    order), or each copy shuffled by a generator seeded with ``(*order_seed, copy)``."""
    if order_seed is None:
        return plan.items * repeat
    import numpy as np

    items = []
    for copy in range(repeat):
        order = np.random.default_rng([*order_seed, copy]).permutation(len(plan.items))
        items += [plan.items[i] for i in order]
    return items


def write_annotation(
    plan: AnnotationPlan, folder: str | Path, repeat: int = 1, order_seed: Sequence[int] | None = None
) -> Path:
    """Write the annotation the trainer reads (:func:`annotation_items`, absolute paths) and its
    ``data.txt``. Returns the ``data.txt`` path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    annotation = out / "annotation.json"
    annotation.write_text(json.dumps(annotation_items(plan, repeat, order_seed), indent=1) + "\n")
    data = out / "data.txt"
    if "," in str(annotation.resolve()):
        raise ConfigError("results", f"{annotation.resolve()}: a ',' in the path breaks Open-Sora-Plan's data.txt")
    data.write_text(f"/,{annotation.resolve()}\n")
    return data
