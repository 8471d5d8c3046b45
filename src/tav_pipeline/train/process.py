"""Running external trainers and samplers: an argv list (never a shell string), output streamed
line by line into the rule's log, the last lines kept for the error when the command fails."""

from __future__ import annotations

import logging
import os
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tav_pipeline.errors import LaunchError

log = logging.getLogger(__name__)


def run_logged(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    on_line: Callable[[str], None] | None = None,
    tail_lines: int = 40,
    logger: logging.Logger = log,
) -> None:
    """Run ``argv`` with ``env`` added to the environment, logging every output line.

    Arguments:
        argv: the command.
        env: variables added to (or replacing those of) this process's environment.
        cwd: working directory.
        on_line: called with each output line (e.g. to check what the trainer reports).
        tail_lines: how many last lines the error carries.

    Raises:
        LaunchError: the command exits with a non-zero status.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    logger.info("running: %s", " ".join(str(a) for a in argv))
    tail: deque[str] = deque(maxlen=tail_lines)
    proc = subprocess.Popen(
        [str(a) for a in argv],
        cwd=str(cwd) if cwd else None,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        errors="replace",
    )
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            logger.info("| %s", line)
            if on_line is not None:
                on_line(line)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    if code != 0:
        raise LaunchError(argv, code, "\n".join(tail))
