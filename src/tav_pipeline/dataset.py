"""The TAV dataset: merged prompts, the train/val/test split, the group A/B/C test prompts and the
Open-Sora-Plan training export (paper sections 3-4).

:func:`build_tav` joins three inputs by video id: the clip sidecars (``clips/{video}.json``), the
validation records (``validation/{video}.json``) and ``captions.jsonl``. A clip becomes an item only when
its sidecar says ``ok``, its validation passed (for that same clip file) and both scenes have a non-empty
caption; every other clip is listed under ``meta.dropped`` with the reason.

**Prompts.** Templates use four placeholders: ``{scene1}``/``{scene2}`` are the captions with the first
letter lower-cased, ``{Scene1}``/``{Scene2}`` with it upper-cased (a leading acronym such as "TV" is
left alone). Captions are whitespace-normalised and lose trailing ``.,;:`` first. The defaults reproduce
the paper's printed prompts (appendix B, ``paper_prompts_{A,B,C}.txt``) character for character:
A ``"{Scene1}."``, B ``"{Scene1}; {scene2}."``, C and the training prompt
``"Previous scene: {scene1}; Next scene: {scene2}"`` (no final period, lower-case first caption).

**Split.** The paper samples 500 videos but splits 480/50/50 (= 580), so the three counts cannot all
hold; see :class:`SplitConfig` for the two readings offered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from tav_pipeline.apportion import largest_remainder
from tav_pipeline.config import check_keys
from tav_pipeline.errors import BadVideoError, ConfigError, TavError
from tav_pipeline.records import read_json_object
from tav_pipeline.video import count_frames, probe

log = logging.getLogger(__name__)

GROUPS = ("A", "B", "C")
"""The paper's three evaluation prompt groups: single scene, implied transition, explicit transition."""

SPLITS = ("train", "val", "test")

PAPER_PROMPT_TEMPLATE = "Previous scene: {scene1}; Next scene: {scene2}"
"""Section 3's merged prompt ("Previous scene: X; Next scene: Y")."""

PAPER_GROUP_TEMPLATES: dict[str, str] = {
    "A": "{Scene1}.",
    "B": "{Scene1}; {scene2}.",
    "C": "Previous scene: {scene1}; Next scene: {scene2}",
}
"""Group templates matching the prompts printed in appendix B."""

PLACEHOLDERS = frozenset({"scene1", "scene2", "Scene1", "Scene2"})

SplitPolicy = Literal["eval_first", "ratio"]


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    """How the kept clips are split (``dataset.split`` in config.yaml).

    The paper's counts are 480/50/50 but it sampled only 500 videos, so they cannot all hold.

    * ``eval_first`` (default): test and val get their full counts first (the paper's evaluation is
      on 50 test prompts, so that number is what matters for comparing results), train takes the rest,
      at most ``train``. Clips beyond the three counts are left out (``meta.unused``). When the clips
      are too few, fewer than ``val + test + min_train``, all three counts shrink in proportion
      ``train:val:test`` instead, with a warning (each eval split keeps at least one clip when there
      are three or more).
    * ``ratio``: the kept clips are split in proportion ``train:val:test`` (480:50:50), all used.

    **Order.** Each video's place is given by ``sha256(f"{seed}:{video}")``: videos are ranked by that
    key, the first go to test, the next to val, the next to train. A video's key depends only on its
    own id and the seed, never on which other videos are present, so adding or removing a video does
    not reshuffle the rest: the others keep their relative order, and at most the videos at a split
    boundary move across it. A seeded ``random.shuffle`` of the list would instead reassign nearly
    every video as soon as one is added, which would silently change the test set between runs.
    """

    policy: SplitPolicy = "eval_first"
    train: int = 480
    val: int = 50
    test: int = 50
    seed: int = 2025
    min_train: int | None = None
    """``eval_first`` keeps the eval counts only when train would get at least this many clips.
    ``None`` means ``val + test``, i.e. the eval counts hold from ``2 * (val + test)`` clips (200)
    upward, so train is never smaller than val and test together."""

    def __post_init__(self) -> None:
        if self.policy not in ("eval_first", "ratio"):
            raise ConfigError("dataset.split.policy", f"must be 'eval_first' or 'ratio', got {self.policy!r}")
        for name in ("train", "val", "test"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"dataset.split.{name}", "must be >= 0")
        if self.train + self.val + self.test == 0:
            raise ConfigError("dataset.split", "train, val and test are all 0")
        if self.min_train is not None and self.min_train < 0:
            raise ConfigError("dataset.split.min_train", "must be >= 0")

    @property
    def effective_min_train(self) -> int:
        """``min_train``, or ``val + test`` when it is ``None``."""
        return self.val + self.test if self.min_train is None else int(self.min_train)


@dataclass(frozen=True)
class DatasetConfig:
    """Prompt templates, split and export settings (``dataset:`` in config.yaml)."""

    prompt_template: str = PAPER_PROMPT_TEMPLATE
    """The training prompt of every item (section 3)."""
    group_templates: Mapping[str, str] = field(default_factory=lambda: dict(PAPER_GROUP_TEMPLATES))
    """Templates of the evaluation groups A, B and C."""
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        _check_template("dataset.prompt_template", self.prompt_template)
        unknown = set(self.group_templates) - set(GROUPS)
        if unknown:
            raise ConfigError("dataset.group_templates", f"unknown groups {sorted(unknown)}; known: {list(GROUPS)}")
        missing = set(GROUPS) - set(self.group_templates)
        if missing:
            raise ConfigError("dataset.group_templates", f"missing groups {sorted(missing)}")
        for group, template in self.group_templates.items():
            _check_template(f"dataset.group_templates.{group}", template)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetConfig:
        """Build from the ``dataset:`` config mapping (nested ``group_templates`` and ``split``
        mappings; any subset of keys, the rest default).

        Arguments:
            d: the mapping.

        Returns:
            the config. Raises :class:`ConfigError` for unknown keys, groups, placeholders or values.
        """
        check_keys("dataset", d, cls)
        kwargs: dict[str, Any] = {}
        if "prompt_template" in d:
            kwargs["prompt_template"] = str(d["prompt_template"])
        if "group_templates" in d:
            templates = dict(PAPER_GROUP_TEMPLATES)
            given = dict(d["group_templates"] or {})
            unknown = set(given) - set(GROUPS)
            if unknown:
                raise ConfigError("dataset.group_templates", f"unknown groups {sorted(unknown)}; known: {list(GROUPS)}")
            templates.update({k: str(v) for k, v in given.items()})
            kwargs["group_templates"] = templates
        if "split" in d:
            split = dict(d["split"] or {})
            check_keys("dataset.split", split, SplitConfig)
            kwargs["split"] = SplitConfig(**split)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for ``tav.json``'s ``meta``).

        Returns:
            nested dict of all settings.
        """
        return {
            "prompt_template": self.prompt_template,
            "group_templates": dict(self.group_templates),
            "split": asdict(self.split),
        }


def _check_template(key: str, template: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(key, f"bad template {template!r}: {exc}") from exc
    bad = names - PLACEHOLDERS
    if bad:
        raise ConfigError(key, f"unknown placeholders {sorted(bad)}; use {sorted(PLACEHOLDERS)}")


# --------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------


def clean_caption(text: str) -> str:
    """Normalise whitespace and drop trailing ``.,;:`` so templates control the punctuation.

    Arguments:
        text: a caption.

    Returns:
        the cleaned caption (may be empty).
    """
    return " ".join(str(text).split()).rstrip(" .,;:")


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or mixed case ("TV", "McD").

    Arguments:
        text: a caption.

    Returns:
        the caption, first letter lower-cased.
    """
    if not text:
        return text
    first_word = text.split(" ", 1)[0]
    if any(ch.isupper() for ch in first_word[1:]):
        return text
    return text[0].lower() + text[1:]


def upper_first(text: str) -> str:
    """Upper-case the first letter.

    Arguments:
        text: a caption.

    Returns:
        the caption, first letter upper-cased.
    """
    return text[:1].upper() + text[1:]


def format_prompt(template: str, scene1: str, scene2: str) -> str:
    """Fill a template with two captions (see the module docstring for the placeholders).

    Arguments:
        template: e.g. ``"Previous scene: {scene1}; Next scene: {scene2}"``.
        scene1: caption of the scene before the cut.
        scene2: caption of the scene after it.

    Returns:
        the prompt.
    """
    c1, c2 = clean_caption(scene1), clean_caption(scene2)
    return template.format(scene1=lower_first(c1), scene2=lower_first(c2), Scene1=upper_first(c1), Scene2=upper_first(c2))


def group_prompts(scene1: str, scene2: str, templates: Mapping[str, str] = PAPER_GROUP_TEMPLATES) -> dict[str, str]:
    """The group A/B/C prompts of one caption pair.

    Arguments:
        scene1: caption of the scene before the cut.
        scene2: caption of the scene after it.
        templates: group name to template.

    Returns:
        group name to prompt.
    """
    return {group: format_prompt(template, scene1, scene2) for group, template in templates.items()}


# --------------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------------


def split_key(video: str, seed: int) -> str:
    """The rank key of a video in the split (see :class:`SplitConfig`).

    Arguments:
        video: video id.
        seed: split seed.

    Returns:
        hex SHA-256 of ``f"{seed}:{video}"``.
    """
    return hashlib.sha256(f"{seed}:{video}".encode()).hexdigest()


def split_counts(n: int, cfg: SplitConfig) -> tuple[dict[str, int], bool]:
    """How many of ``n`` kept clips go to each split.

    Arguments:
        n: number of kept clips.
        cfg: the split settings.

    Returns:
        ``({"train": ..., "val": ..., "test": ...}, shrunk)``, where ``shrunk`` says the requested eval
        counts could not hold and were scaled down (``eval_first`` only).
    """
    shrunk = False
    if cfg.policy == "eval_first" and n >= cfg.val + cfg.test + cfg.effective_min_train:
        test, val = cfg.test, cfg.val
        train = min(cfg.train, n - val - test)
    else:
        shrunk = cfg.policy == "eval_first"
        # Order (test, val, train): ties in the remainders favour the eval splits.
        test, val, train = largest_remainder(n, [cfg.test, cfg.val, cfg.train])
        # Each requested eval split keeps one clip when there are enough clips for all three.
        if n >= 3 and cfg.test > 0 and test == 0 and train > 1:
            test, train = 1, train - 1
        if n >= 3 and cfg.val > 0 and val == 0 and train > 1:
            val, train = 1, train - 1
    return {"train": train, "val": val, "test": test}, shrunk


class SplitResult(NamedTuple):
    """Outcome of :func:`assign_splits`."""

    split_of: dict[str, str]
    """Video to ``"train"``, ``"val"`` or ``"test"``."""
    unused: list[str]
    """Videos left out (``eval_first`` with more clips than the three counts), sorted."""
    counts: dict[str, int]
    """Clips per split."""
    shrunk: bool
    """The eval counts could not hold and were scaled down (see :func:`split_counts`)."""


def assign_splits(videos: Iterable[str], cfg: SplitConfig) -> SplitResult:
    """Assign each video to a split by its rank key (:func:`split_key`): test first, then val, then train.

    Arguments:
        videos: ids of the kept clips.
        cfg: the split settings.

    Returns:
        the assignment, see :class:`SplitResult`.
    """
    ranked = sorted(set(videos), key=lambda v: (split_key(v, cfg.seed), v))
    counts, shrunk = split_counts(len(ranked), cfg)
    if shrunk:
        log.warning(
            "only %d clips, fewer than val + test + min_train (%d + %d + %d): splitting train:val:test %d:%d:%d "
            "in proportion instead (train %d, val %d, test %d)",
            len(ranked), cfg.val, cfg.test, cfg.effective_min_train, cfg.train, cfg.val, cfg.test,
            counts["train"], counts["val"], counts["test"],
        )
    split_of: dict[str, str] = {}
    start = 0
    for name in ("test", "val", "train"):
        for video in ranked[start : start + counts[name]]:
            split_of[video] = name
        start += counts[name]
    unused = ranked[start:]
    if unused:
        log.info("%d clips beyond the split counts are left out", len(unused))
    return SplitResult(split_of, sorted(unused), counts, shrunk)


# --------------------------------------------------------------------------------------------------
# tav.json
# --------------------------------------------------------------------------------------------------


def _by_video(records: Iterable[str | Path | Mapping[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for obj in records:
        rec = read_json_object(obj)
        if "video" not in rec:
            raise TavError(f"{kind} record without 'video': {obj if not isinstance(obj, Mapping) else rec}")
        video = str(rec["video"])
        if video in out:
            raise TavError(f"two {kind} records for video {video!r}")
        out[video] = rec
    return out


def _same_file(a: Any, b: Any) -> bool:
    return os.path.normpath(str(a)) == os.path.normpath(str(b))


def _write_atomic(path: str | Path, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def build_tav(
    sidecars: Iterable[str | Path | Mapping[str, Any]],
    validations: Iterable[str | Path | Mapping[str, Any]],
    captions_jsonl: str | Path | Iterable[Mapping[str, Any]],
    cfg: DatasetConfig,
    out_json: str | Path | None = None,
    prompts_dir: str | Path | None = None,
    caption_model: str | None = None,
) -> dict[str, Any]:
    """Join clips, validation and captions into the TAV dataset.

    Arguments:
        sidecars: clip sidecars (``clips/{video}.json`` paths or loaded mappings).
        validations: validation records (``validation/{video}.json`` paths or mappings).
        captions_jsonl: ``captions.jsonl`` path, or its rows.
        cfg: templates and split.
        out_json: where to write ``tav.json`` (atomically); ``None`` writes nothing.
        prompts_dir: when given, also write ``{A,B,C}.txt`` there (:func:`write_prompts`).
        caption_model: recorded as the caption model when the caption rows do not name one.

    Returns:
        ``{"meta", "items", "test_prompts"}``. ``meta``: ``templates`` (``prompt`` and the groups),
        ``split`` (settings, ``counts`` used, ``shrunk``), ``seed``, ``n_items``, ``caption_model``,
        ``n_clips``, ``dropped`` (reason to videos), ``unused``. ``items`` (sorted by video): ``video``,
        ``clip``, ``scene1``, ``scene2`` (cleaned captions), ``prompt``, ``split``, ``duration``,
        ``fps``, ``frames``, ``cut_time_in_clip``. ``test_prompts``: group to the test items' prompts,
        in item order.

    Raises:
        TavError: duplicate records for a video, two captions for one scene, or caption rows from
            different models.
    """
    clips = _by_video(sidecars, "clip sidecar")
    checks = _by_video(validations, "validation")
    rows = _read_caption_rows(captions_jsonl)

    captions: dict[tuple[str, int], str] = {}
    models: set[str] = set()
    for row in rows:
        key = (str(row["video"]), int(row["scene"]))
        if key in captions:
            raise TavError(f"two captions for video {key[0]!r} scene {key[1]}")
        captions[key] = str(row.get("caption", ""))
        if key[0] in clips and row.get("model"):
            models.add(str(row["model"]))
    if len(models) > 1:
        raise TavError(f"captions.jsonl mixes caption models {sorted(models)}; re-caption with one model")
    model_name = next(iter(models)) if models else caption_model

    dropped: dict[str, list[str]] = {}
    kept: dict[str, dict[str, Any]] = {}
    for video in sorted(clips):
        clip = clips[video]
        reason: str | None = None
        s1 = s2 = ""
        check = checks.get(video)
        if clip.get("status", "ok") != "ok":
            reason = "clip_not_ok"
        elif check is None:
            reason = "no_validation"
        elif check.get("passed") is not True:
            reason = "validation_failed"
        elif check.get("clip") is not None and not _same_file(check["clip"], clip["clip"]):
            reason = "validation_stale"
        elif (video, 1) not in captions or (video, 2) not in captions:
            reason = "no_caption"
        else:
            s1, s2 = clean_caption(captions[(video, 1)]), clean_caption(captions[(video, 2)])
            if not s1 or not s2:
                reason = "empty_caption"
        if reason is not None:
            dropped.setdefault(reason, []).append(video)
            continue
        kept[video] = {
            "video": video,
            "clip": str(clip["clip"]),
            "scene1": s1,
            "scene2": s2,
            "prompt": format_prompt(cfg.prompt_template, s1, s2),
            "duration": float(clip["duration"]),
            "fps": float(clip["fps"]),
            "frames": int(clip["frames"]),
            "cut_time_in_clip": float(clip["cut_time_in_clip"]),
        }
    for reason, videos in dropped.items():
        log.warning("dropped %d clip(s), %s: %s", len(videos), reason, ", ".join(videos[:10]) + (" ..." if len(videos) > 10 else ""))

    split_of, unused, counts, shrunk = assign_splits(kept, cfg.split)
    items = []
    for video in sorted(kept):
        if video in split_of:
            item = kept[video]
            items.append({**item, "split": split_of[video]})
    test_items = [it for it in items if it["split"] == "test"]
    test_prompts = {
        group: [format_prompt(template, it["scene1"], it["scene2"]) for it in test_items]
        for group, template in cfg.group_templates.items()
    }
    tav: dict[str, Any] = {
        "meta": {
            "templates": {"prompt": cfg.prompt_template, **{g: cfg.group_templates[g] for g in GROUPS}},
            "split": {**asdict(cfg.split), "counts": counts, "shrunk": shrunk},
            "seed": cfg.split.seed,
            "n_items": len(items),
            "n_clips": len(clips),
            "caption_model": model_name,
            "dropped": dropped,
            "unused": unused,
        },
        "items": items,
        "test_prompts": test_prompts,
    }
    log.info(
        "TAV: %d items (train %d, val %d, test %d) from %d clips",
        len(items), counts["train"], counts["val"], counts["test"], len(clips),
    )
    if out_json is not None:
        _write_atomic(out_json, json.dumps(tav, indent=2, ensure_ascii=False) + "\n")
    if prompts_dir is not None:
        write_prompts(tav, prompts_dir)
    return tav


def _read_caption_rows(captions: str | Path | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if not isinstance(captions, (str, Path)):
        return list(captions)
    rows: list[Mapping[str, Any]] = []
    with open(captions, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise TavError(f"{captions}:{number}: not JSON ({exc})") from exc
            if "video" not in row or "scene" not in row:
                raise TavError(f"{captions}:{number}: a caption row needs 'video' and 'scene'")
            rows.append(row)
    return rows


def write_prompts(tav: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write the test prompts of each group, one per line, to ``out_dir/{A,B,C}.txt``.

    Arguments:
        tav: the dataset from :func:`build_tav`.
        out_dir: destination folder.

    Returns:
        group to written file.
    """
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for group, prompts in tav["test_prompts"].items():
        for prompt in prompts:
            if "\n" in prompt or "\r" in prompt:
                raise TavError(f"group {group} prompt spans lines: {prompt!r}")
        path = out / f"{group}.txt"
        _write_atomic(path, "".join(p + "\n" for p in prompts))
        written[group] = path
    return written


# --------------------------------------------------------------------------------------------------
# Open-Sora-Plan export
# --------------------------------------------------------------------------------------------------


def export_opensora(
    tav: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    split: str = "train",
    video_root: str | Path | None = None,
) -> Path:
    """Write an Open-Sora-Plan (v1.3) training data list for one split.

    Files: ``out_dir/data.txt`` with the single line ``VIDEO_ROOT,ANNOTATION_JSON`` (absolute paths;
    Open-Sora-Plan splits the line on the comma) and ``out_dir/tav_{split}.json``, a list of
    ``{"path": clip relative to VIDEO_ROOT, "cap": prompt, "resolution": {"height", "width"} (probed),
    "num_frames": clip frames, "fps": clip fps, "crop": [0, width, 0, height]}``. ``crop`` is the full
    frame: the trainer's readers unpack it unconditionally in some versions.

    The files do not depend on the training settings. Which clips Open-Sora-Plan's trainer would
    drop at ``train:``'s frames, size and fps (too short, too long, odd aspect, small shape buckets) is
    worked out before each launch, with upstream's own arithmetic
    (:func:`tav_pipeline.backends.opensora.annotation.plan_annotation`).

    Arguments:
        tav: ``tav.json`` path or the dict from :func:`build_tav`.
        out_dir: destination folder.
        split: which split to export.
        video_root: VIDEO_ROOT; default the deepest folder holding every clip.

    Returns:
        the ``data.txt`` path.

    Raises:
        TavError: the split is empty, or a path holds a comma.
        BadVideoError: a clip is not ``.mp4`` (``not_mp4``), is missing (``missing_file``), unreadable,
            or has no frame rate (``no_fps``).
    """
    data = read_json_object(tav)
    items = [it for it in data["items"] if it.get("split") == split]
    if not items:
        raise TavError(f"split {split!r} of the TAV dataset is empty; nothing to export")
    clips = [Path(it["clip"]).expanduser().resolve() for it in items]
    for clip in clips:
        if clip.suffix != ".mp4":
            raise BadVideoError(clip, "not_mp4", "Open-Sora-Plan reads only paths ending in .mp4 as video")
    root = Path(video_root).expanduser().resolve() if video_root is not None else Path(os.path.commonpath([c.parent for c in clips]))
    out = Path(out_dir).expanduser().resolve()
    annotation = out / f"tav_{split}.json"
    for p in (root, annotation):
        if "," in str(p):
            raise TavError(f"{p}: Open-Sora-Plan's data.txt is comma-separated; this path holds a comma")

    entries: list[dict[str, Any]] = []
    for item, clip in zip(items, clips):
        info = probe(clip)  # raises missing_file / unreadable
        clip_fps = float(item.get("fps") or info.fps)
        if not clip_fps > 0:
            raise BadVideoError(clip, "no_fps", "neither the sidecar nor the container gives a frame rate")
        if info.fps > 0 and abs(info.fps - clip_fps) > 0.01 * clip_fps:
            log.warning("%s: sidecar fps %.3f, container fps %.3f; using the sidecar's", clip, clip_fps, info.fps)
        frames = int(item.get("frames") or info.frame_count or count_frames(clip))
        rel = os.path.relpath(clip, root)
        if rel.startswith(".."):
            raise TavError(f"{clip} is not under VIDEO_ROOT {root}")
        entries.append(
            {
                "path": rel,
                "cap": item["prompt"],
                "resolution": {"height": int(info.height), "width": int(info.width)},
                "num_frames": frames,
                "fps": clip_fps,
                "crop": [0, int(info.width), 0, int(info.height)],
            }
        )
    for entry in entries:
        if not entry["path"].endswith(".mp4") or not (root / entry["path"]).is_file():
            raise BadVideoError(root / entry["path"], "missing_file", "export self-check failed")
    _write_atomic(annotation, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    data_txt = out / "data.txt"
    _write_atomic(data_txt, f"{root},{annotation}\n")
    log.info("Open-Sora-Plan export: %d %s clips under %s -> %s", len(entries), split, root, data_txt)
    return data_txt
