"""Where things the config names live: a model in a local folder or on the Hugging Face hub, and
the external assets a run reads (:class:`Asset`; the list is :mod:`tav_pipeline.assets`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def is_local_folder(name: str) -> bool:
    """True when ``name`` is a local folder rather than a hub id.

    A hub id is ``owner/name``: exactly one ``/``, not absolute, not starting with ``.`` or ``~``.
    Anything else is a folder: a path that exists, an absolute or ``.``/``~`` path, a path with a
    backslash or a trailing ``/``, one with more than one ``/``, and a bare name without ``/`` (the
    workflow's models are folders; the hub's legacy un-namespaced ids are not used here).
    """
    if Path(name).expanduser().exists():
        return True
    return os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.endswith("/") or name.count("/") != 1


@dataclass(frozen=True)
class Asset:
    """One file or folder the run reads and does not build."""

    key: str
    """The config key that holds its path (or names it)."""
    path: str
    rule: str
    """The rule that fetches it."""
    what: str
    source: str
    """Where ``rule`` downloads it from; empty when nothing is configured."""
    by_hand: str
    """How to place it without the network."""

    @property
    def present(self) -> bool:
        """Anything at the path, even a partial copy, belongs to the user and is left alone."""
        return os.path.lexists(self.path)


def under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it."""
    p, f = os.path.normpath(path), os.path.normpath(folder)
    return p == f or p.startswith(f + os.sep)
