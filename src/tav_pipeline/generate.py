"""Test-prompt videos of the baseline and every post-trained checkpoint (paper sections 4-5).

``results/generated/{model}/{checkpoint}/{group}/{i}.mp4`` is the video of line ``i`` (0-based) of
``results/prompts/{group}.txt``; ``checkpoint`` is ``baseline`` or ``epoch_{N}``. Each group folder
also holds ``prompts.json``: ``{"group": ..., "prompts": [...]}`` (what the evaluation reads) plus
the seeds and settings of the videos.

This module holds what every backend shares: the prompt files and the manifest. The rule's entry
point, :func:`tav_pipeline.backends.generate_videos_step`, hands the run to ``train.backend``. The diffusers
backend and the pretrained-only models of ``generate.baselines`` generate in
:mod:`tav_pipeline.backends.diffusers.generate`, Open-Sora-Plan in
:mod:`tav_pipeline.backends.opensora.sample`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tav_pipeline.errors import PromptFileError

MANIFEST = "prompts.json"


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line (a final newline is fine; a blank line is not: it would shift indices).

    Raises:
        PromptFileError: a blank line, or no prompt at all.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise PromptFileError(path, f"line {n} is blank")
    if not lines:
        raise PromptFileError(path, "holds no prompt")
    return [line.strip() for line in lines]


def manifest_doc(
    *,
    group: str,
    prompts: Sequence[str],
    seeds: Sequence[int | None],
    model: str,
    backend: str,
    checkpoint: str,
    weights: str,
    num_frames: int,
    height: int,
    width: int,
    fps: float,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The content of ``prompts.json``: ``group`` and ``prompts`` (index ``i`` -> ``{i}.mp4``), then
    how the videos were made (``seeds[i]`` of video ``i``, ``None`` where the sampler seeds itself)."""
    return {
        "group": group,
        "prompts": list(prompts),
        "seeds": list(seeds),
        "model": model,
        "backend": backend,
        "checkpoint": checkpoint,
        "weights": weights,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "fps": fps,
        "settings": dict(settings),
    }


def write_doc(folder: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as the ``prompts.json`` of ``folder``."""
    path = Path(folder) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
