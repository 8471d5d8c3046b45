"""Where a model named in the config lives: a local folder or a Hugging Face hub id."""

from __future__ import annotations

import os
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
