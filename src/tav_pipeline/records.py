"""Reading the per-stage JSON records (sidecars, validation records, tav.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tav_pipeline.errors import RecordError


def read_json_object(path_or_record: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object from a file, or a copy of a record already in memory. Raises
    :class:`RecordError` when the file holds something other than an object."""
    if isinstance(path_or_record, Mapping):
        return dict(path_or_record)
    with open(path_or_record, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise RecordError(path_or_record, "expected a JSON object")
    return data
