"""Logging for workflow scripts: everything (logging, warnings, tqdm) goes to the rule's log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def to_file(path: str | Path, level: int = logging.INFO) -> Iterator[TextIO]:
    """Send stderr (and so tqdm progress bars and warnings) and the root logger to ``path``.

    Exceptions raised inside the block are logged with their traceback before they propagate,
    so a failing rule's log says why.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w", buffering=1)
    saved = sys.stderr
    sys.stderr = handle
    root = logging.getLogger()
    handler = logging.StreamHandler(handle)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    try:
        yield handle
    except BaseException:
        logging.getLogger("tav_pipeline").exception("step failed")
        raise
    finally:
        root.removeHandler(handler)
        sys.stderr = saved
        handle.close()
