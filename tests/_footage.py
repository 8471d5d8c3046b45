"""Real footage for tests: the sample videos Debian's ``opencv-doc`` package ships.

The package is fetched once with ``apt-get download opencv-doc`` into the labelled set's cache
(``benchmarks/labelled_set.py`` does the same); tests skip, saying why, where apt-get cannot get it.
Edited cases (black leaders, tails, splices) are rendered with the labelled set's own case list, so
tests and benchmark share their labels.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import labelled_set  # noqa: E402


def opencv_doc() -> Path:
    """The unpacked opencv-doc root (fetched on first use)."""
    try:
        return labelled_set.fetch_opencv_doc(labelled_set.DEFAULT_CACHE)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"opencv-doc (real sample videos) could not be fetched with apt-get download: {exc}")


def megamind() -> Path:
    """Megamind.avi as shipped: MPEG-4 ASP with packed B-frames, a black frame 0, presentation
    times starting one frame late, hard cuts at decode frames 98, 154 and 200."""
    return opencv_doc() / labelled_set.SOURCES["megamind"]


def case(name: str, out: Path) -> labelled_set.Entry:
    """Render the labelled set's case ``name`` into ``out`` and return its entry (labels)."""
    index = next(i for i, c in enumerate(labelled_set.CASES, start=1) if c.name == name)
    out.mkdir(parents=True, exist_ok=True)
    return labelled_set.build_case(labelled_set.CASES[index - 1], opencv_doc(), out, index)
