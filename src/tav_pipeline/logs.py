"""Logging for workflow scripts: everything (logging, warnings, tqdm) goes to the rule's log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tav_pipeline.errors import TavError


@contextmanager
def to_file(path: str | Path, level: int = logging.INFO) -> Iterator[TextIO]:
    """Send stderr (and so tqdm progress bars and warnings) and the root logger to ``path``.

    Exceptions raised inside the block are logged with their traceback before they propagate,
    so a failing rule's log says why. A :class:`~tav_pipeline.errors.TavError` (a missing asset, a
    config error: what the user must act on) is logged as its message alone, printed as one line
    on the job's own stderr, and ends the job with exit status 1 instead of a traceback.
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
    failure: TavError | None = None
    try:
        yield handle
    except TavError as exc:
        logging.getLogger("tav_pipeline").error("%s", exc)
        failure = exc
    except BaseException:
        logging.getLogger("tav_pipeline").exception("step failed")
        raise
    finally:
        root.removeHandler(handler)
        sys.stderr = saved
        handle.close()
    if failure is not None:
        print(f"ERROR: {failure} (log: {path})", file=sys.stderr)
        raise SystemExit(1)
