"""Shared plumbing of the typed config sections.

The workflow validates ``config.yaml`` against ``rules/schemas/config.schema.yaml`` (defaults,
types, unknown keys); each stage then turns its section into a frozen dataclass, and
:func:`check_keys` makes that conversion refuse unknown keys too, so a config that bypasses the
schema (a test, a notebook) fails the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tav_pipeline.errors import ConfigError


def check_keys(section: str, data: Mapping[str, Any], cls: type) -> None:
    """Raise :class:`ConfigError` naming ``section.key`` for the first key of ``data`` that is not
    a field of the dataclass ``cls``, or when ``data`` is not a mapping at all."""
    if not isinstance(data, Mapping):
        raise ConfigError(section, f"expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{section}.{key}", f"unknown key; known keys: {sorted(known)}")
