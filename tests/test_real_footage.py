"""The data half on real footage (opencv-doc's sample videos): exact clips from an AVI with packed
B-frames, black leaders and tails, honest reject reasons, and thread caps."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _footage import case, megamind

from tav_pipeline import steps
from tav_pipeline.clips import ClipConfig, ClipRecord, extract_clip
from tav_pipeline.detectors.paper import CutConfig, detect_cuts
from tav_pipeline.detectors.robust import RobustConfig, detect_transitions
from tav_pipeline.video import EncodeSettings, iter_frames

FAST = ClipConfig(encoder=EncodeSettings(preset="ultrafast"))


def thumbs(path: Path) -> list[np.ndarray]:
    return [f.image.astype(np.float32) for f in iter_frames(path, width=64)]


def source_frames_of(clip: Path, source: list[np.ndarray], start: int) -> list[int]:
    """For each clip frame, the source frame it shows: the nearest of the source frames within 3
    of where it should be."""
    out = []
    for k, image in enumerate(thumbs(clip)):
        near = range(max(0, start + k - 3), min(len(source), start + k + 4))
        out.append(min(near, key=lambda i: float(np.abs(source[i] - image).mean())))
    return out


@pytest.fixture(scope="module")
def megamind_robust():
    return detect_transitions(megamind(), threads=1)


def test_megamind_black_frame_is_a_leader_not_a_transition(megamind_robust) -> None:
    assert [(c.frame, c.kind) for c in megamind_robust.cuts] == [(98, "cut"), (154, "cut"), (200, "cut")]
    assert [(b.kind, b.start, b.end) for b in megamind_robust.blanks] == [("leader", 0, 0)]
    # the paper mode drops the step out of black by its own rule, and says so
    paper = detect_cuts(megamind(), threads=1)
    assert [c.frame for c in paper.cuts] == [98, 154, 200]
    assert [c.frame for c in paper.dropped] == [1]


@pytest.mark.parametrize("first", [0, 2], ids=["first_cut_98", "cut_200_late_window"])
def test_clip_from_packed_b_frame_avi_holds_exactly_its_window(megamind_robust, first: int, tmp_path: Path) -> None:
    """Megamind.avi's presentation times start one frame late; the clip must still hold the
    decoded frames of its window, none dropped or repeated, and the sidecar must match the file."""
    result = dataclasses.replace(megamind_robust, cuts=megamind_robust.cuts[first:])
    record = extract_clip(result, tmp_path / "clip.mp4", FAST, threads=1)
    cut = result.cuts[0].frame
    # the window never reaches into the black leader
    expected_start = max(1, cut - 120)
    assert (record.start_frame, record.cut_frame, record.cut_frame_in_clip) == (expected_start, cut, cut - expected_start)
    assert record.frames == min(cut + 120, 270) - expected_start
    shown = source_frames_of(Path(record.clip), thumbs(megamind()), record.start_frame)
    assert shown == list(range(record.start_frame, record.start_frame + record.frames))
    # the cut is where the sidecar says, in frames and in seconds
    again = detect_cuts(record.clip, CutConfig(min_scene_len=0))
    assert record.cut_frame_in_clip in [c.frame for c in again.cuts]
    assert record.cut_time - record.start == pytest.approx(record.cut_time_in_clip, abs=1e-4)
    assert record.cut_time_in_clip == pytest.approx(record.cut_frame_in_clip / record.fps, abs=1e-5)


def test_clip_step_on_the_trailer_uses_its_first_real_cut(megamind_robust, tmp_path: Path) -> None:
    megamind_robust.write(tmp_path / "cuts.json")
    record = steps.extract_clip_step(tmp_path / "cuts.json", tmp_path / "c.mp4", tmp_path / "c.json", {"encoder": {"preset": "ultrafast"}}, threads=1)
    assert record.status == "ok" and record.cut_frame == 98 and record.cut_kind == "cut"


@pytest.mark.parametrize("name", ["leader_black_cut", "tail_black_cut", "leader_tail_fades", "megamind_opening", "fade_in_then_cut"])
def test_black_leaders_and_tails_on_real_footage(name: str, tmp_path: Path) -> None:
    entry = case(name, tmp_path)
    result = detect_transitions(tmp_path / entry.file, threads=1)
    truth = [t.frame for t in entry.transitions]
    assert len(result.cuts) == len(truth) and all(abs(c.frame - t) <= 2 for c, t in zip(result.cuts, truth))
    assert [b.kind for b in result.blanks] == [b.kind for b in entry.blanks]
    for found, label in zip(result.blanks, entry.blanks):
        near = label.end if label.kind == "leader" else label.start
        assert abs((found.end if found.kind == "leader" else found.start) - near) <= 3, (found, label)
    # in short chunks (a chunk may see only part of a leader or tail) the answer is the same
    chunked = detect_transitions(tmp_path / entry.file, RobustConfig(chunk=140, overlap=64), threads=1)
    assert (chunked.cuts, chunked.blanks) == (result.cuts, result.blanks)
    # the clip stays between the detected leader and tail, centred on the first real transition
    record = extract_clip(result, tmp_path / "clip.mp4", FAST, threads=1)
    lead = next((b.end for b in result.blanks if b.kind == "leader"), -1)
    tail = next((b.start for b in result.blanks if b.kind == "tail"), entry.frames)
    assert lead < record.start_frame and record.start_frame + record.frames <= tail
    assert abs(record.cut_frame - truth[0]) <= 2


def test_reject_reasons_say_what_happened(tmp_path: Path) -> None:
    """The trailer's opening (a black frame, then one shot): the paper mode found a cut at frame 1
    and dropped it; the robust mode found only the leader. Each reason says so."""
    entry = case("megamind_start", tmp_path)
    fetched = tmp_path / "fetched.json"
    fetched.write_text(json.dumps({"status": "ok", "path": str(tmp_path / entry.file)}))
    paper = steps.detect_cuts_step(fetched, tmp_path / "paper.json", {"mode": "paper"}, "v", threads=1)
    clip = steps.extract_clip_step(tmp_path / "paper.json", tmp_path / "p.mp4", tmp_path / "p.json", {}, threads=1)
    assert paper.cuts == [] and (clip.status, clip.reason) == ("rejected", "cut_too_early")
    assert "frame 1 " in clip.detail and "min_scene_len" in clip.detail and "robust" in clip.detail
    robust = steps.detect_cuts_step(fetched, tmp_path / "robust.json", {"mode": "robust"}, "v", threads=1)
    clip = steps.extract_clip_step(tmp_path / "robust.json", tmp_path / "r.mp4", tmp_path / "r.json", {}, threads=1)
    assert robust.cuts == [] and (clip.status, clip.reason) == ("rejected", "no_cut")
    assert "black leader (frames 0-0)" in clip.detail
    table = steps.collect_rejects([], [tmp_path / "robust.json"], [], {}, tmp_path / "r.csv", tmp_path / "f.csv")
    assert table.to_dict("records")[0]["reason"] == "no_cut"
    assert ClipRecord.read(tmp_path / "r.json").reason == "no_cut"


CPU_PROBE = r"""
import json, resource, sys, time
from tav_pipeline.threads import limit_threads
limit_threads(1)
import torch
from tav_pipeline.clips import ClipConfig, extract_clip
from tav_pipeline.detectors.robust import RobustConfig, detect_transitions, load_model
from tav_pipeline.video import EncodeSettings
load_model("cpu")
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime, b.ru_utime + b.ru_stime
# cut_threshold 200: no spike is decided cheaply, so every one goes to the model
config = RobustConfig(cut_threshold=200.0)
w0, c0 = time.perf_counter(), cpu()
result = detect_transitions(sys.argv[1], config, threads=1)
w1, c1 = time.perf_counter(), cpu()
extract_clip(result, sys.argv[2], ClipConfig(encoder=EncodeSettings(preset="veryfast")), threads=1)
w2, c2 = time.perf_counter(), cpu()
print(json.dumps({"windows": result.settings["model_windows"], "torch_threads": torch.get_num_threads(),
                  "detect": [w1 - w0, c1[0] - c0[0]], "clip": [w2 - w1, c2[0] - c1[0] + c2[1] - c1[1]]}))
"""


def test_one_thread_jobs_use_one_core(tmp_path: Path) -> None:
    """A job given one thread uses at most one core: CPU time never exceeds wall time (threads
    that spin or a decoder pool one per core would push it above)."""
    proc = subprocess.run([sys.executable, "-c", CPU_PROBE, str(megamind()), str(tmp_path / "c.mp4")],
                          capture_output=True, text=True, check=True)  # fmt: skip
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["windows"] > 0 and got["torch_threads"] == 1
    for step in ("detect", "clip"):
        wall, cpu = got[step]
        assert cpu <= 1.1 * wall + 0.2, (step, wall, cpu)
