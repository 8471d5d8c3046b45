"""The captions file ``captions.jsonl``: one BLIP caption per scene of every validated clip.

One line per scene, sorted by video then scene, written through a ``.partial`` file so an interrupted
run resumes where it stopped (:func:`caption_clips`). The keyframes come from
:mod:`tav_pipeline.keyframes`, the captions from :mod:`tav_pipeline.captioner`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tav_pipeline.captioner import CaptionConfig, Captioner, batches, caption_images, load_captioner, model_label
from tav_pipeline.errors import BadVideoError, RecordError
from tav_pipeline.files import write_text_atomic
from tav_pipeline.records import read_json_object

log = logging.getLogger(__name__)




def _sha1_file(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Job:
    video: str
    scene: int
    keyframe: str
    sha1: str = field(compare=False)


def _jobs(records: Iterable[Mapping[str, Any]]) -> list[_Job]:
    jobs: list[_Job] = []
    seen: set[str] = set()
    for rec in records:
        video = str(rec["video"])
        if video in seen:
            raise RecordError("caption records", f"video {video!r} appears twice")
        seen.add(video)
        for scene in (1, 2):
            png = rec.get(f"scene{scene}_png")
            if png is None:
                raise RecordError("caption records", f"the record of {video!r} lacks scene{scene}_png")
            if not Path(png).is_file():
                raise BadVideoError(png, "missing_file", f"keyframe of scene {scene} of {video}")
            jobs.append(_Job(video, scene, str(png), _sha1_file(png)))
    jobs.sort(key=lambda j: (j.video, j.scene))
    return jobs


def records_from_keyframes(
    keyframes: Iterable[str | Path | Mapping[str, Any]],
    validations: Iterable[str | Path | Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Turn keyframe records (:func:`extract_keyframes`) into :func:`caption_clips` records.

    Arguments:
        keyframes: ``keyframes/{video}.json`` paths or loaded records; records whose ``status`` is
            not ``ok`` (keyframe extraction was rejected) are skipped.
        validations: when given, ``validation/{video}.json`` records; only clips whose record says
            ``"passed": true`` are kept (captioning a clip that cannot enter the dataset is wasted GPU
            time).

    Returns:
        ``{"video", "clip", "scene1_png", "scene2_png"}`` per kept clip, sorted by video.
    """
    passed: set[str] | None = None
    if validations is not None:
        passed = set()
        for obj in validations:
            rec = read_json_object(obj)
            if rec.get("passed") is True:
                passed.add(str(rec["video"]))
    out = []
    for obj in keyframes:
        rec = read_json_object(obj)
        video = str(rec["video"])
        if passed is not None and video not in passed:
            continue
        if rec.get("status", "ok") != "ok":
            log.info("%s: no keyframes (%s), not captioned", video, rec.get("reason", rec.get("status")))
            continue
        out.append({"video": video, "clip": rec.get("clip"), "scene1_png": rec["scene1"]["png"], "scene2_png": rec["scene2"]["png"]})
    skipped = "" if passed is None else f" ({len(passed)} validated)"
    log.info("%d clips to caption%s", len(out), skipped)
    return sorted(out, key=lambda r: r["video"])


def partial_path(out_jsonl: str | Path) -> Path:
    """Where :func:`caption_clips` keeps finished lines while it runs.

    Arguments:
        out_jsonl: the final captions file.

    Returns:
        ``out_jsonl`` + ``.partial``.
    """
    p = Path(out_jsonl)
    return p.with_name(p.name + ".partial")


def _load_partial(path: Path, model: str, settings: str) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return done
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            key = (str(row["video"]), int(row["scene"]))
            ok = row.get("model") == model and row.get("settings") == settings and isinstance(row.get("caption"), str)
        except (ValueError, KeyError, TypeError):
            bad += 1  # a line cut short by the interruption
            continue
        if ok:
            done[key] = row
    if bad:
        log.warning("%s: ignored %d unreadable line(s)", path, bad)
    return done


def caption_clips(
    records: Sequence[Mapping[str, Any]],
    cfg: CaptionConfig,
    out_jsonl: str | Path,
    captioner: Captioner | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Caption both keyframes of every clip and write ``captions.jsonl``.

    Each line is ``{"video", "scene": 1|2, "keyframe", "caption", "model", "keyframe_sha1",
    "settings"}``: ``model`` is :func:`model_label`, ``keyframe_sha1`` the PNG's SHA-1 and
    ``settings`` :meth:`CaptionConfig.settings_key`. Lines are sorted by video, then scene.

    Resuming: finished lines are appended to ``out_jsonl.partial`` after every batch. A later call
    reuses a partial line when its video, scene, keyframe path, PNG hash, model and settings all match
    the current request, and captions only the rest; the model is not even loaded when nothing is left.
    The final file is written atomically and the partial file removed.

    Arguments:
        records: one mapping per clip with ``video``, ``scene1_png`` and ``scene2_png`` (other keys are
            ignored).
        cfg: caption settings.
        out_jsonl: the captions file to write.
        captioner: an already loaded captioner; loaded from ``cfg`` when needed and ``None``.
        progress: show a tqdm bar over keyframes.

    Returns:
        the written rows, in file order.

    Raises:
        RecordError: a video appears twice or a record lacks a keyframe path.
        BadVideoError: ``missing_file`` for a keyframe PNG that does not exist.
        MissingAssetError: see :func:`load_captioner`.
    """
    jobs = _jobs(records)
    label = captioner.name if captioner is not None else model_label(cfg)
    settings = cfg.settings_key()
    partial = partial_path(out_jsonl)
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = _load_partial(partial, label, settings)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    pending: list[_Job] = []
    for job in jobs:
        prev = done.get((job.video, job.scene))
        if prev is not None and prev.get("keyframe") == job.keyframe and prev.get("keyframe_sha1") == job.sha1:
            rows[(job.video, job.scene)] = prev
        else:
            pending.append(job)
    if rows:
        log.info("resuming: %d of %d captions reused from %s", len(rows), len(jobs), partial)
    # Rewrite the partial file with only the reusable lines, so stale ones never come back.
    write_text_atomic(partial, "".join(json.dumps(r) + "\n" for r in rows.values()))
    if pending:
        if captioner is None:
            captioner = load_captioner(cfg)
            label = captioner.name
        bar = tqdm(total=len(pending), desc="caption scenes", unit="img", disable=not progress)
        try:
            with open(partial, "a", encoding="utf-8") as handle:
                for batch in batches(pending, cfg.batch_size):
                    captions = caption_images([j.keyframe for j in batch], captioner, cfg, progress=False)
                    for job, caption in zip(batch, captions):
                        row = {
                            "video": job.video,
                            "scene": job.scene,
                            "keyframe": job.keyframe,
                            "caption": caption,
                            "model": label,
                            "keyframe_sha1": job.sha1,
                            "settings": settings,
                        }
                        rows[(job.video, job.scene)] = row
                        handle.write(json.dumps(row) + "\n")
                    handle.flush()
                    bar.update(len(batch))
        finally:
            bar.close()
    ordered = [rows[(j.video, j.scene)] for j in jobs]
    Path(out_jsonl).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_jsonl, "".join(json.dumps(r) + "\n" for r in ordered))
    partial.unlink(missing_ok=True)
    log.info("wrote %d captions for %d clips to %s", len(ordered), len(jobs) // 2, out_jsonl)
    return ordered
