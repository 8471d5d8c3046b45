"""File-level entry points, one per workflow rule.

Each function takes paths and plain config dicts (as the rule's ``params`` hold them), turns the
dicts into the stage's typed config, calls the stage module, and writes the rule's outputs.
Per-video steps never raise on bad input: they write a record with ``status: rejected`` and a
named ``reason``, which :func:`collect_rejects` gathers into the rejects table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tav_pipeline.clips import ClipConfig, ClipRecord, extract_clip, rejection
from tav_pipeline.cuts import CutResult
from tav_pipeline.detectors import detect, detector_from_cuts
from tav_pipeline.errors import BadVideoError, MissingAssetError, RecordError
from tav_pipeline.records import read_json_object
from tav_pipeline.threads import limit_threads
from tav_pipeline.validation import ValidationConfig, ValidationRecord, validate_clip

log = logging.getLogger(__name__)


def detect_cuts_step(fetched_json: str | Path, out_json: str | Path, cuts: dict[str, Any], video: str, *, threads: int = 0) -> CutResult:
    """Rule ``detect_cuts``: one video's cut record (``status: rejected`` for unusable input).
    ``threads``: the rule's threads, the cap on every thread pool of the process (0: no cap).
    The detector is ``cuts.mode``'s, with its settings from ``cuts``."""
    if threads:
        limit_threads(threads)
    fetched = json.loads(Path(fetched_json).read_text())
    path = fetched.get("path") or ""
    detector = detector_from_cuts(cuts)
    mode = detector.mode
    if fetched.get("status") != "ok":
        error = BadVideoError(path or fetched.get("video_id", video), fetched.get("reason") or "download_failed", fetched.get("detail", ""))
        result = CutResult.rejected(video, path, error, detector=mode)
    else:
        try:
            result = detect(path, detector, video=video, progress=True, threads=threads)
        except BadVideoError as exc:
            log.warning("rejected: %s", exc)
            result = CutResult.rejected(video, path, exc, detector=mode)
    result.write(out_json)
    log.info("%s: %s, %d cut(s)", video, result.status, len(result.cuts))
    return result


def extract_clip_step(
    cuts_json: str | Path, out_mp4: str | Path, out_json: str | Path, clips: dict[str, Any], *, threads: int = 0
) -> ClipRecord:
    """Rule ``extract_clip``: the clip around the first cut and its sidecar.

    A clip that cannot be cut (:class:`BadVideoError`: ``no_cut``, ``window_too_short``,
    ``encode_failed``, a source that no longer decodes) gets a sidecar with ``status: rejected``
    and the reason, and ``out_mp4`` becomes an empty placeholder (the rule's declared output);
    nothing downstream reads it, since only validated clips go on. ``threads``: the rule's threads
    (decoder, encoder and every pool of the process; 0: no cap).
    """
    if threads:
        limit_threads(threads)
    result = CutResult.read(cuts_json)
    try:
        record = extract_clip(result, out_mp4, ClipConfig.from_dict(clips), threads=threads)
    except BadVideoError as exc:
        log.warning("rejected: %s", exc)
        record = ClipRecord.rejected(result.video, result.path, exc)
        Path(out_mp4).unlink(missing_ok=True)  # a partial encode
        Path(out_mp4).parent.mkdir(parents=True, exist_ok=True)
        Path(out_mp4).touch()
        record.write(out_json)
        return record
    record.write(out_json)
    log.info("%s: %.3f-%.3f s (%d frames), cut at clip frame %d, policy %s", record.video, record.start, record.end, record.frames, record.cut_frame_in_clip, record.policy)
    return record


def validate_clip_step(
    clip_json: str | Path, out_json: str | Path, validation: dict[str, Any], cuts: dict[str, Any], *, threads: int = 0
) -> ValidationRecord:
    """Rule ``validate_clip``: never raises for a bad clip (see :func:`validate_clip`). ``threads``:
    the rule's threads (0: no cap)."""
    if threads:
        limit_threads(threads)
    record = ClipRecord.read(clip_json)
    out = validate_clip(record, ValidationConfig.from_dict(validation), cuts, threads=threads)
    out.write(out_json)
    log.info("%s: passed=%s max_diff=%.2f at frame %d %s", out.video, out.passed, out.max_diff, out.max_diff_frame, out.reason)
    return out


REJECT_COLUMNS = ["video", "stage", "reason", "detail", "path"]


def collect_rejects(
    fetched: Sequence[str | Path],
    cuts: Sequence[str | Path],
    validation: Sequence[str | Path],
    clips: dict[str, Any],
    rejects_csv: str | Path,
    failures_csv: str | Path,
    *,
    sidecars: Sequence[str | Path] = (),
    keyframes: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Rule ``collect_rejects``: every sampled video that did not become a captionable clip, with
    the stage and reason, plus the download failures table.

    Arguments:
        fetched: ``videos/{video}.json`` of the sample.
        cuts: ``cuts/{video}.json`` of the sample.
        validation: ``validation/{video}.json`` of the videos that got a clip.
        clips: the ``clips:`` config (which cut records allow a clip).
        rejects_csv: destination, columns :data:`REJECT_COLUMNS`.
        failures_csv: destination of the download failures.
        sidecars: ``clips/{video}.json`` of the videos that got a clip (``status: rejected`` when
            cutting failed).
        keyframes: ``keyframes/{video}.json`` of the videos that got a clip (``status: rejected``
            when validation or keyframe extraction failed; a validation failure is reported at
            ``validate_clip``, the first stage that rejected it).

    Returns:
        The rejects table: one row per video, for the first stage that rejected it.
    """
    clip_config = ClipConfig.from_dict(clips)
    rows: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []

    def reject(video: str, stage: str, reason: str, detail: str, path: str) -> None:
        rows.setdefault(video, {"video": video, "stage": stage, "reason": reason, "detail": detail, "path": path})

    for path in fetched:
        rec = json.loads(Path(path).read_text())
        if rec.get("status") != "ok":
            failures.append({k: rec.get(k, "") for k in ("video", "video_id", "url", "reason", "detail")})
    for path in cuts:
        result = CutResult.read(path)
        if result.status != "ok":
            reject(result.video, "fetch_video" if _is_fetch_reason(result.reason) else "detect_cuts", result.reason, result.detail, result.path)
            continue
        why = rejection(result, clip_config)
        if why is not None:
            reject(result.video, "extract_clip", why[0], why[1], result.path)
    for path in sidecars:
        clip = ClipRecord.read(path)
        if clip.status != "ok":
            reject(clip.video, "extract_clip", clip.reason or "rejected", clip.detail, clip.source)
    for path in validation:
        v = ValidationRecord.read(path)
        if not v.passed:
            detail = v.detail or f"max mean BGR absdiff {v.max_diff:.2f} (threshold {v.threshold})"
            reject(v.video, "validate_clip", v.reason or "validation_failed", detail, v.clip)
    for path in keyframes:
        rec = read_json_object(path)
        if rec.get("status", "ok") != "ok":
            reject(str(rec["video"]), "extract_keyframes", str(rec.get("reason") or "rejected"), str(rec.get("detail", "")), str(rec.get("clip", "")))
    table = pd.DataFrame(list(rows.values()), columns=REJECT_COLUMNS).sort_values(["video"], kind="stable")
    Path(rejects_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(rejects_csv, index=False)
    pd.DataFrame(failures, columns=["video", "video_id", "url", "reason", "detail"]).to_csv(failures_csv, index=False)
    log.info("%d rejected video(s), %d download failure(s)", len(table), len(failures))
    return table


def _is_fetch_reason(reason: str) -> bool:
    return reason.startswith("download_failed") or reason in ("not_found_locally", "empty_file")


def fetch_metadata_step(out_csv: str | Path, url: str) -> None:
    """Rule ``fetch_metadata``: download the Panda-70M validation CSV, or explain where it comes
    from when no URL is configured or the network is unreachable."""
    if not url:
        raise MissingAssetError(
            out_csv,
            "fetch_metadata",
            "Download Panda-70M's validation metadata CSV (panda70m_validation.csv, linked from the "
            "Panda-70M repository's README) and place it there, or set source.metadata_url",
        )
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - URL from config
            data = response.read()
    except OSError as exc:
        raise MissingAssetError(out_csv, "fetch_metadata", f"download from {url} failed: {exc}") from exc
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    Path(out_csv).write_bytes(data)


def sample_videos_step(metadata_csv: str | Path, sample: dict[str, Any], sample_csv: str | Path, shares_csv: str | Path) -> pd.DataFrame:
    """Rule ``sample_videos``: the stratified sample and its category shares."""
    from tav_pipeline.sample import SampleConfig, write_sample
    from tav_pipeline.source import read_metadata

    drawn, shares = write_sample(read_metadata(metadata_csv), SampleConfig.from_dict(sample), sample_csv, shares_csv)
    log.info("sampled %d videos\n%s", len(drawn), shares.to_string(index=False))
    return drawn


def fetch_video_step(sample_csv: str | Path, video: str, source: dict[str, Any], out_json: str | Path) -> Any:
    """Rule ``fetch_video``: find or download one sampled video; failures become a record."""
    from tav_pipeline.sample import read_sample
    from tav_pipeline.video_fetch import SourceConfig, fetch_video

    table = read_sample(sample_csv)
    rows = table[table["video"] == video]
    if rows.empty:
        raise RecordError(sample_csv, f"{video!r} is not in the sample")
    settings = {k: v for k, v in source.items() if k != "metadata_url"}
    record = fetch_video(rows.iloc[0], SourceConfig.from_dict(settings), Path(out_json).parent)
    record.write(out_json)
    log.info("%s: %s %s %s", video, record.status, record.reason, record.path)
    return record


def extract_keyframes_step(
    clip_mp4: str | Path,
    clip_json: str | Path,
    validation_json: str | Path,
    keyframes: dict[str, Any],
    frames_dir: str | Path,
    out_json: str | Path,
) -> dict[str, Any]:
    """Rule ``extract_keyframes``: one frame well inside each scene of a clip that passed
    validation, saved as ``frames_dir/scene1.png`` and ``scene2.png``.

    A clip that failed validation gets no frames (a record with ``status: rejected``, reason
    ``validation_failed``). A clip whose keyframes cannot be taken (:class:`BadVideoError`:
    ``scene_too_short``, a decode error, a PNG that cannot be written; or a sidecar that is not
    ``ok``) gets a record with ``status: rejected`` and the reason. Either way ``frames_dir`` is empty.
    """
    from tav_pipeline.keyframes import KeyframeConfig, extract_keyframes

    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta = read_json_object(clip_json)
    video = str(meta.get("video", Path(clip_mp4).stem))
    validation = ValidationRecord.read(validation_json)
    try:
        if meta.get("status", "ok") != "ok":
            raise BadVideoError(clip_mp4, "clip_rejected", f"the clip sidecar's status is {meta.get('status')!r}")
        if not validation.passed:
            raise BadVideoError(clip_mp4, "validation_failed", f"validate_clip: {validation.reason or 'not passed'}")
        return extract_keyframes(clip_mp4, meta, KeyframeConfig.from_dict(keyframes), folder / "scene1.png", folder / "scene2.png", out_json)
    except BadVideoError as exc:
        log.warning("rejected: %s", exc)
        for png in folder.glob("*.png"):
            png.unlink()
        record = {"video": video, "status": "rejected", "clip": str(clip_mp4), "reason": exc.reason, "detail": exc.detail}
        Path(out_json).write_text(json.dumps(record, indent=2) + "\n")
        return record


def caption_scenes_step(keyframe_jsons: Sequence[str | Path], validation_jsons: Sequence[str | Path], captions: dict[str, Any], out_jsonl: str | Path) -> list[dict[str, Any]]:
    """Rule ``caption_scenes``: BLIP captions of both scenes of every validated clip."""
    from tav_pipeline.captioner import CaptionConfig
    from tav_pipeline.captions import caption_clips, records_from_keyframes

    records = records_from_keyframes(keyframe_jsons, validation_jsons)
    log.info("captioning %d clips (%d scenes)", len(records), 2 * len(records))
    return caption_clips(records, CaptionConfig.from_dict(captions), out_jsonl)


def build_tav_step(
    captions_jsonl: str | Path,
    clip_jsons: Sequence[str | Path],
    validation_jsons: Sequence[str | Path],
    dataset: dict[str, Any],
    caption_model: str,
    tav_json: str | Path,
    prompts_dir: str | Path,
    opensora_dir: str | Path,
) -> dict[str, Any]:
    """Rule ``build_tav``: tav.json, the A/B/C test prompts and the Open-Sora-Plan export."""
    from tav_pipeline.dataset import DatasetConfig, build_tav, export_opensora

    cfg = DatasetConfig.from_dict(dataset)
    tav = build_tav(clip_jsons, validation_jsons, captions_jsonl, cfg, tav_json, prompts_dir=prompts_dir, caption_model=caption_model)
    export_opensora(tav, opensora_dir)
    return tav
