"""How many threads a job's libraries may start.

A workflow job declares ``threads:``; :func:`limit_threads` caps every thread pool of this process
(OpenCV's, OpenMP's and the BLAS libraries' through their environment variables, torch's when it
is loaded) at that number, and the decoders and encoders take it as an argument
(:mod:`tav_pipeline.video`). So a job never runs more threads at once than it declared, and a
second job on the same cores does not make it spin: an OpenMP pool larger than the cores it
actually gets spends its time waiting at barriers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)

POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables read by OpenMP, OpenBLAS, MKL and numexpr when their pools start (and by
the subprocesses this process starts)."""


def limit_threads(threads: int) -> None:
    """Cap this process's thread pools at ``threads`` (>= 1).

    Sets :data:`POOL_VARIABLES` (pools that start later, subprocesses), OpenCV's pool, and torch's
    intra- and inter-op pools when torch is already imported (a later ``import torch`` reads
    ``OMP_NUM_THREADS``).

    Raises:
        ValueError: ``threads < 1``.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    for name in POOL_VARIABLES:
        os.environ[name] = str(threads)
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only possible before torch's first parallel work
            torch.set_num_interop_threads(threads)
    log.debug("thread pools capped at %d", threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with torch's intra-op pool at ``threads`` (never more than it is now), then
    restore it."""
    import torch

    before = torch.get_num_threads()
    wanted = max(1, min(threads, before))
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)
