"""Panda-70M validation metadata: reading the CSV and naming its videos.

The metadata CSV has one row per source video. Its list cells are Python literals, e.g.::

    videoID,url,timestamp,caption,matching_score,desirable_filtering,shot_boundary_detection
    -2yHu5qgTzM,https://www.youtube.com/watch?v=-2yHu5qgTzM,"[['0:01:20.880', '0:01:23.983'], ...]",
        "['A neuron in a black background.', ...]","[0.4514, ...]","['desirable', ...]",
        "[[['0:00:00.000', '0:00:03.069']], ...]"

``timestamp`` lists the annotated clips (start, end) in the source video; ``caption``,
``matching_score`` and ``desirable_filtering`` give one value per clip; ``shot_boundary_detection``
gives, per clip, the shots inside it (times relative to the clip start). The first public release
of the validation CSV had only the first five columns, so the last two are optional here.
The videos themselves are fetched by :mod:`tav_pipeline.video_fetch`.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tav_pipeline.errors import MetadataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("videoID", "url", "timestamp", "caption", "matching_score")
"""Columns every Panda-70M metadata CSV has."""
OPTIONAL_COLUMNS: tuple[str, ...] = ("desirable_filtering", "shot_boundary_detection")
"""Columns of the later release of the CSVs; filled with empty per-clip lists when absent."""
DERIVED_COLUMNS: tuple[str, ...] = ("video", "text", "span_start", "span_end")
"""Columns :func:`read_metadata` adds."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # KEY_PATTERN, anchored
_TIMESTAMP = re.compile(r"^\s*(\d+):([0-5]?\d):([0-5]?\d(?:\.\d*)?)\s*$")


def timestamp_seconds(value: object) -> float:
    """Convert a Panda-70M timestamp to seconds.

    Arguments:
        value: ``'H:MM:SS.mmm'`` (e.g. ``'0:01:20.880'``), or a non-negative number of seconds.

    Returns:
        Seconds as a float.

    Raises:
        ValueError: the value is neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a timestamp: {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _TIMESTAMP.match(value)
        if m:
            return int(m.group(1)) * 3600.0 + int(m.group(2)) * 60.0 + float(m.group(3))
    raise ValueError(f"not a timestamp: {value!r}")


KEY_PATTERN = r"[A-Za-z0-9_-]+"
"""Every video key matches this (the workflow's ``wildcard_constraints`` for ``video``)."""
MAX_KEY_LENGTH = 64
"""Longer IDs are shortened (slug plus hash) so that every derived file name stays short."""
PERIODIC_REPEATS = 20
"""Snakemake refuses a wildcard value that ends in 20 or more copies of one substring
(``PeriodicWildcardError``: it takes such a value for a rule feeding itself, e.g. ``cam1_`` plus
twenty ``0``); see :func:`periodic_suffix`."""


def periodic_suffix(value: str, repeats: int = PERIODIC_REPEATS) -> str | None:
    """The repeated unit when ``value`` ends in at least ``repeats`` copies of one substring.

    This is Snakemake's own test for a periodic wildcard value (``snakemake.io.PeriodicityDetector``
    with its default ``min_repeat=20``: the regex ``(.+)(\\1){19,99}$`` searched anywhere in the
    value, so a longer periodic tail matches as well), written out so keys can be checked here.

    Arguments:
        value: a wildcard value.
        repeats: copies needed.

    Returns:
        The shortest repeated unit, or None when the value is not periodic.
    """
    for size in range(1, len(value) // repeats + 1):
        unit = value[-size:]
        if value.endswith(unit * repeats):
            return unit
    return None


def video_key(video_id: str) -> str:
    """A file-name and Snakemake-wildcard safe key for a videoID.

    Arguments:
        video_id: the Panda-70M ``videoID`` (YouTube IDs are ``[A-Za-z0-9_-]{11}``).

    Returns:
        ``video_id`` itself when it matches :data:`KEY_PATTERN`, has at most
        :data:`MAX_KEY_LENGTH` characters and is not periodic (:func:`periodic_suffix`), which
        every YouTube ID satisfies. Otherwise a slug of it (runs of other characters become ``_``,
        at most 40 characters) plus ``-`` plus the first 8 hex digits of the SHA-1 of its UTF-8
        bytes, so that distinct IDs give distinct keys. Such a key is never periodic: it has at
        most 49 characters, so a periodic tail would be 20 copies of a unit of 1 or 2 characters,
        and its last 9 characters (``-`` then 8 hex digits) admit no such unit.
    """
    if _SAFE_ID.match(video_id) and len(video_id) <= MAX_KEY_LENGTH and periodic_suffix(video_id) is None:
        return video_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", video_id).strip("_-")[:40].strip("_-") or "video"
    digest = hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}"


def _literal(path: Path, row: int, video_id: str, column: str, cell: str) -> Any:
    try:
        return ast.literal_eval(cell)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise MetadataError(path, f"not a Python literal ({type(exc).__name__}): {cell[:80]!r}",
                            row=row, column=column, video_id=video_id) from exc


def _pairs(path: Path, row: int, video_id: str, column: str, value: Any) -> list[tuple[float, float]]:
    """Parse a list of [start, end] timestamp pairs."""
    if not isinstance(value, (list, tuple)):
        raise MetadataError(path, f"expected a list of [start, end] pairs, got {type(value).__name__}",
                            row=row, column=column, video_id=video_id)
    out: list[tuple[float, float]] = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise MetadataError(path, f"expected a [start, end] pair, got {item!r}",
                                row=row, column=column, video_id=video_id)
        try:
            start, end = timestamp_seconds(item[0]), timestamp_seconds(item[1])
        except ValueError as exc:
            raise MetadataError(path, str(exc), row=row, column=column, video_id=video_id) from exc
        if end < start:
            raise MetadataError(path, f"clip ends before it starts: {item!r}",
                                row=row, column=column, video_id=video_id)
        out.append((start, end))
    return out


def _parse_row(path: Path, row: int, record: Mapping[str, str], has_optional: Mapping[str, bool]) -> dict[str, Any]:
    video_id = record["videoID"]
    if video_id == "":
        raise MetadataError(path, "empty videoID", row=row, column="videoID")
    url = record["url"].strip()  # may be empty: such a video can only come from video_dir

    def err(column: str, message: str) -> MetadataError:
        return MetadataError(path, message, row=row, column=column, video_id=video_id)

    clips = _pairs(path, row, video_id, "timestamp", _literal(path, row, video_id, "timestamp", record["timestamp"]))
    if not clips:
        raise err("timestamp", "no clips listed")
    n = len(clips)

    captions = _literal(path, row, video_id, "caption", record["caption"])
    if not isinstance(captions, (list, tuple)) or not all(isinstance(c, str) for c in captions):
        raise err("caption", "expected a list of strings")
    scores = _literal(path, row, video_id, "matching_score", record["matching_score"])
    if not isinstance(scores, (list, tuple)) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores
    ):
        raise err("matching_score", "expected a list of numbers")
    lengths = {"caption": len(captions), "matching_score": len(scores)}

    if has_optional["desirable_filtering"]:
        desirable = _literal(path, row, video_id, "desirable_filtering", record["desirable_filtering"])
        if not isinstance(desirable, (list, tuple)) or not all(isinstance(d, str) for d in desirable):
            raise err("desirable_filtering", "expected a list of strings")
        lengths["desirable_filtering"] = len(desirable)
    else:
        desirable = []
    if has_optional["shot_boundary_detection"]:
        shots_raw = _literal(path, row, video_id, "shot_boundary_detection", record["shot_boundary_detection"])
        if not isinstance(shots_raw, (list, tuple)):
            raise err("shot_boundary_detection", "expected a list (one list of shots per clip)")
        shots = [_pairs(path, row, video_id, "shot_boundary_detection", s) for s in shots_raw]
        lengths["shot_boundary_detection"] = len(shots)
    else:
        shots = []
    for column, length in lengths.items():
        if length != n:
            raise err(column, f"{length} entries for {n} clips in 'timestamp'")

    return {
        "videoID": video_id,
        "url": url,
        "timestamp": clips,
        "caption": [str(c) for c in captions],
        "matching_score": [float(s) for s in scores],
        "desirable_filtering": [str(d) for d in desirable],
        "shot_boundary_detection": shots,
        "video": video_key(video_id),
        "text": " ".join(c.strip() for c in captions if c.strip()),
        "span_start": min(s for s, _ in clips),
        "span_end": max(e for _, e in clips),
    }


def read_metadata(csv_path: str | Path) -> pd.DataFrame:
    """Read and validate a Panda-70M metadata CSV.

    List cells are parsed with :func:`ast.literal_eval` (never ``eval``); timestamps become
    seconds. Cells are read with the :mod:`csv` module exactly as written (no NA conversion, no
    index inference), so an ID such as ``NA`` stays a string and a row with an extra field is an
    error rather than a silent column shift. Blank lines are skipped.

    Arguments:
        csv_path: the CSV (e.g. ``panda70m_validation.csv``).

    Returns:
        One row per source video, in file order, with the columns of :data:`REQUIRED_COLUMNS`
        and :data:`OPTIONAL_COLUMNS` (``timestamp`` as a list of ``(start, end)`` seconds,
        ``shot_boundary_detection`` as a list of such lists, times relative to each clip), plus
        ``video`` (:func:`video_key`), ``text`` (the clip captions joined by spaces),
        ``span_start`` (earliest clip start) and ``span_end`` (latest clip end), in seconds.

    Raises:
        MetadataError: the file is missing or not CSV, a required column
            is missing, a cell cannot be parsed, list lengths disagree, a videoID repeats, or two
            IDs map to the same key.
    """
    import pandas as pd

    path = Path(csv_path)
    if not path.is_file():
        raise MetadataError(path, "no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            table = list(csv.reader(fh, strict=True))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise MetadataError(path, f"cannot read as CSV: {str(exc).strip()}") from exc
    if not table:
        raise MetadataError(path, "cannot read as CSV: the file is empty")
    header, body = table[0], [r for r in table[1:] if r]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise MetadataError(path, f"repeated column(s) {repeated} in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise MetadataError(path, f"missing column(s) {missing}; found {header}")
    has_optional = {c: c in header for c in OPTIONAL_COLUMNS}
    absent = [c for c, present in has_optional.items() if not present]
    if absent:
        log.info("%s: no %s column(s) (first release of the CSV); filled with empty lists", path, absent)

    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for i, cells in enumerate(body, start=1):
        if len(cells) != len(header):
            raise MetadataError(path, f"cannot read as CSV: {len(cells)} fields, the header has {len(header)}",
                                row=i)
        parsed = _parse_row(path, i, dict(zip(header, cells, strict=True)), has_optional)
        vid = parsed["videoID"]
        if vid in first_row:
            raise MetadataError(path, f"duplicate videoID, first seen in row {first_row[vid]}",
                                row=i, column="videoID", video_id=vid)
        first_row[vid] = i
        rows.append(parsed)

    columns = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *DERIVED_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    keys = df["video"]
    if keys.duplicated().any():
        dup = str(keys[keys.duplicated()].iloc[0])
        ids = df.loc[keys == dup, "videoID"].tolist()
        raise MetadataError(path, f"videoIDs {ids} map to the same key {dup!r}", column="videoID")
    folded = keys.str.casefold()
    if folded.duplicated().any():
        log.warning("%s: %d video keys differ only in case; they clash on case-insensitive file systems",
                    path, int(folded.duplicated(keep=False).sum()))
    no_url = int((df["url"] == "").sum())
    if no_url:
        log.warning("%s: %d videos have an empty url; they can only be found in video_dir", path, no_url)
    log.info("%s: %d videos, %d clips", path, len(df), int(df["timestamp"].map(len).sum()))
    return df
