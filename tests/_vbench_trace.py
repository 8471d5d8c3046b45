"""A diagnostic re-run of vbench's dynamic degree that keeps the per-pair flow magnitudes (tests only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tav_pipeline.devices import resolve_device
from tav_pipeline.errors import MissingAssetError
from tav_pipeline.metrics.vbench_weights import FETCH_RULE, RAFT_THINGS, WEIGHT_URLS


@dataclass(frozen=True)
class DynamicDegreeTrace:
    """What vbench's dynamic degree computed for one video, step by step."""

    frames: int
    """Frames RAFT saw (the video sampled to about 8 fps)."""
    magnitudes: list[float]
    """Per consecutive frame pair: the mean of the largest 5% flow magnitudes (pixels)."""
    threshold: float
    """``6 * min(H, W) / 256`` pixels."""
    count_needed: int
    """``round(4 * frames / 16)`` pairs must pass the threshold."""
    moving: bool
    """vbench's verdict (the per-video dynamic degree)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trace_dynamic_degree(path: str | Path, raft_weights: str | Path, device: str = "cpu") -> DynamicDegreeTrace:
    """Re-run vbench's ``DynamicDegree.infer`` on one video with its own methods, keeping the
    per-pair flow magnitudes that ``infer`` throws away (for tests and for explaining a verdict).

    The loop is ``DynamicDegree.infer`` of vbench 0.1.5 line by line: ``get_frames``,
    ``set_params``, ``InputPadder``, ``model(..., iters=20, test_mode=True)``, ``get_score``,
    ``check_move``. RAFT reads no other cache file, so ``raft_weights`` may lie anywhere.

    Raises:
        MissingAssetError: ``raft_weights`` does not exist.
    """
    if not Path(raft_weights).is_file():
        raise MissingAssetError(raft_weights, FETCH_RULE, f"it is published inside {WEIGHT_URLS[RAFT_THINGS]}")
    import torch
    from easydict import EasyDict
    from vbench.dynamic_degree import DynamicDegree
    from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

    dev = torch.device(resolve_device(device))
    args = EasyDict({"model": str(raft_weights), "small": False, "mixed_precision": False, "alternate_corr": False})
    dynamic = DynamicDegree(args, dev)
    with torch.no_grad():
        frames = dynamic.get_frames(str(path))
        dynamic.set_params(frame=frames[0], count=len(frames))
        magnitudes: list[float] = []
        for image1, image2 in zip(frames[:-1], frames[1:]):
            padder = InputPadder(image1.shape)
            image1, image2 = padder.pad(image1, image2)
            _, flow_up = dynamic.model(image1, image2, iters=20, test_mode=True)
            magnitudes.append(float(dynamic.get_score(image1, flow_up)))
    return DynamicDegreeTrace(
        frames=len(frames),
        magnitudes=magnitudes,
        threshold=float(dynamic.params["thres"]),
        count_needed=int(dynamic.params["count_num"]),
        moving=bool(dynamic.check_move(magnitudes)),
    )
