"""Build the labelled benchmark set for the transition detectors.

    python benchmarks/labelled_set.py OUT_DIR [--cache DIR] [--deb PATH] [--quick]

Writes ``OUT_DIR/NN_name.mp4`` (plus two untouched originals) and ``OUT_DIR/labels.json``, the
same bytes-for-labels on every run: every source is fixed, every edit is an ffmpeg filter graph
with frame-exact trims.

Footage is real: the sample clips that Debian's ``opencv-doc`` package ships
(``examples/data/{Megamind,vtest,tree}.avi``, ``opencv4/html/{box,cup}.mp4.gz`` and the still
photos in ``examples/data``). The package is fetched with ``apt-get download opencv-doc`` into
the cache folder when it is not there yet and unpacked with ``dpkg -x``.

What the set holds (see :data:`CASES`):

* ``Megamind.avi`` as shipped (a trailer excerpt: a black leader frame, then hard cuts at decode
  frames 98, 154 and 200, each checked by eye), two stream copies of it (packed B-frames kept) and
  ``tree.avi`` as shipped (no transition; a hand passes in front of the lens at ~1.5 frames/s);
* black leaders and tails: black frames or a fade from (to) black at the start (end), which are
  labelled as ``blanks``, not as transitions;
* real segments without transitions (surveillance, hand-held object footage, animation);
* real segments spliced with hard cuts at known frames, including cuts in the first and last
  frames and a two-frame shot;
* dissolves (``xfade=fade``) and fades (``fade`` out/in, through black, and ``xfade=fadeblack``)
  of known length between real segments, fades from black at the start and to black at the end;
* traps that are not transitions: single-frame white flashes and partial flashes, strobes, whip
  pans (a fast, motion-blurred translation of a real video or photo), a slow zoom, a steady pan,
  and a dimming scene;
* a few lavfi-only synthetic videos.

Every output is re-encoded to 480x360, 25 fps (each source frame maps to one output frame, so
the labels are exact), H.264 (libx264 medium, CRF 20, yuv420p). The script decodes every file
it writes and checks its frame count against the labels.

Label conventions (``labels.json``): a hard cut's ``frame`` is the first frame of the new shot
and ``start == end == frame``. A gradual transition covers the frames ``start..end`` (inclusive)
that mix both shots (or show the black between them); its ``frame`` is the midpoint. ``blanks``
lists a video's black ``leader`` (frame 0 to the last black or fading-in frame) and ``tail``: the
cut or fade out of a leader (into a tail) is part of it, not a transition, since a clip centred
there would hold black and one scene.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("labelled_set")

FPS = 25
SIZE = (480, 360)
DEFAULT_CACHE = Path.home() / ".cache" / "tav-pipeline" / "opencv-doc"
DOC = Path("usr/share/doc/opencv-doc")

SOURCES = {
    "megamind": DOC / "examples/data/Megamind.avi",
    "vtest": DOC / "examples/data/vtest.avi",
    "tree": DOC / "examples/data/tree.avi",
    "box": Path("box.mp4"),
    "cup": Path("cup.mp4"),
}
"""Video sources, relative to the unpacked package (box/cup are gunzipped into the cache root)."""

MEGAMIND_CUTS = [98, 154, 200]
"""Hard cuts in Megamind.avi (decode frame index of the first frame of each new shot), checked
by eye: frame 0 is black (the trailer's black leader, not a transition), then shots 1-97, 98-153,
154-199, 200-269."""

AVI_COPIES = [("megamind_avi_from_1", 2.0), ("megamind_avi_from_98", 4.2)]
"""Stream copies of Megamind.avi (``ffmpeg -ss S -c:v copy``): each starts at the keyframe before
``S`` seconds and keeps the packed B-frames and their shifted timestamps. Their frames are matched
to the original's after writing, which gives the labels."""


@dataclass(frozen=True)
class Seg:
    """Frames ``start..end-1`` of a source. ``src`` is a key of :data:`SOURCES`, ``img:NAME`` (a
    photo from examples/data, looped), ``lavfi:SPEC`` or ``black``. ``pre`` filters run before
    the scaling to 480x360 (crops for pans), ``fx`` after it; ``n`` counts from 0 in the segment.
    ``fade_in``/``fade_out``: frames of fade from/to black at the segment's start/end."""

    src: str
    start: int
    end: int
    pre: str = ""
    fx: str = ""
    fade_in: int = 0
    fade_out: int = 0

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Join:
    """How two segments meet: ``cut``; ``dissolve``/``fadeblack`` (ffmpeg ``xfade`` over
    ``length`` frames: the first frame is still pure A, the next ``length-1`` mix, so the output
    loses ``length`` frames); ``fade`` (A fades out over ``length`` frames, ``hold`` black frames,
    B fades in over ``length_in`` frames)."""

    kind: str
    length: int = 0
    hold: int = 0
    length_in: int = 0


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    parts: tuple[Seg | Join, ...]
    note: str = ""


@dataclass
class Transition:
    frame: int
    kind: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class Blank:
    """A black opening (``leader``: from frame 0) or closing (``tail``: to the last frame), with
    the fade into or out of it: frames ``start..end``. Not a scene transition."""

    kind: str
    start: int
    end: int


@dataclass
class Entry:
    file: str
    name: str
    category: str
    frames: int
    fps: float
    transitions: list[Transition] = field(default_factory=list)
    note: str = ""
    blanks: list[Blank] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["transitions"] = [{**asdict(t), "length": t.length} for t in self.transitions]
        return d


def S(src: str, start: int, end: int, **kw: object) -> Seg:
    return Seg(src, start, end, **kw)  # type: ignore[arg-type]


CUT = Join("cut")


def dissolve(n: int) -> Join:
    return Join("dissolve", n)


def flash(frames: list[int], alpha: float = 1.0) -> str:
    cond = "+".join(f"eq(n,{i})" for i in frames)
    color = "white" if alpha >= 1.0 else f"white@{alpha}"
    return f"drawbox=x=0:y=0:w=iw:h=ih:color={color}:t=fill:enable='{cond}'"


SUBFRAMES = 24
"""Whip pans are rendered at 24x the frame rate and averaged over half of each frame interval
(a 180-degree shutter), which gives real directional motion blur."""


def whip(*, start: int, frames: int, dx: int, dy: int = 0, x0: int = 0, y0: int = 0, drift: float = 0.0) -> str:
    """Crop a 480x360 window that drifts ``drift`` px/frame, then slides (dx, dy) over ``frames``
    frames from ``start`` (a whip pan, smooth ease-in/out), then drifts on. The crop moves at
    :data:`SUBFRAMES` positions per frame and each output frame averages the first half of them
    (motion blur of a 180-degree shutter)."""
    k = SUBFRAMES
    t = f"(n/{k})"
    ramp = f"if(lt({t},{start}),0,if(lt({t},{start + frames}),(1-cos(PI*({t}-{start})/{frames}))/2,1))"
    x = f"{x0}+{drift}*{t}+{dx}*{ramp}"
    y = f"{y0}+{dy}*{ramp}"
    return f"fps={FPS * k},crop=w=480:h=360:x='{x}':y='{y}',tmix=frames={k // 2},framestep={k}"


M0, M1, M2, M3 = (1, 98), (98, 154), (154, 200), (200, 270)
"""Megamind shots (start, end) in decode frames."""

CASES: list[Case] = [
    # --- real footage, no transition -------------------------------------------------------
    Case("vtest_a", "real_none", (S("vtest", 0, 150),)),
    Case("vtest_b", "real_none", (S("vtest", 400, 550),)),
    Case("box_a", "real_none", (S("box", 0, 150),)),
    Case("box_b", "real_none", (S("box", 230, 380),), "hand-held, sudden box motion"),
    Case("cup_a", "real_none", (S("cup", 0, 150),)),
    Case("cup_b", "real_none", (S("cup", 67, 217),)),
    Case("megamind_shot0", "real_none", (S("megamind", 2, 97),), "one animated shot"),
    Case("megamind_shot3", "real_none", (S("megamind", 200, 270),)),
    # --- real footage, hard cuts -------------------------------------------------------------
    Case("cut_box_cup", "real_cut", (S("box", 0, 60), CUT, S("cup", 0, 60))),
    Case("cut_vtest_megamind", "real_cut", (S("vtest", 0, 50), CUT, S("megamind", 10, 90))),
    Case("cut_three", "real_cut", (S("cup", 100, 160), CUT, S("box", 300, 380), CUT, S("vtest", 500, 560))),
    Case("cut_same_film", "real_cut", (S("megamind", 110, 150), CUT, S("megamind", 160, 195)), "two shots of one scene"),
    Case("cut_reedit", "real_cut", (S("megamind", 60, 97), CUT, S("megamind", 200, 260), CUT, S("megamind", 100, 150))),
    Case("cut_at_2", "real_cut_early", (S("box", 0, 2), CUT, S("cup", 0, 70))),
    Case("cut_at_1", "real_cut_early", (S("vtest", 0, 1), CUT, S("box", 100, 170))),
    Case("cut_late_2", "real_cut_late", (S("cup", 0, 70), CUT, S("box", 0, 2))),
    Case("cut_last_frame", "real_cut_late", (S("box", 0, 70), CUT, S("vtest", 100, 101))),
    Case("cut_short_shot", "real_cut", (S("box", 0, 40), CUT, S("cup", 0, 8), CUT, S("vtest", 0, 40)), "an 8-frame shot"),
    Case("megamind_98", "real_cut", (S("megamind", 70, 153),), "the trailer's own cut at 98"),
    Case("megamind_154_200", "real_cut", (S("megamind", 140, 230),), "the trailer's own cuts"),
    Case("megamind_start", "real_leader", (S("megamind", 0, 60),), "the trailer's black frame, then its first shot: no transition"),
    # --- dissolves ---------------------------------------------------------------------------
    Case("dissolve_box_cup", "real_dissolve", (S("box", 0, 60), dissolve(12), S("cup", 0, 60))),
    Case("dissolve_vtest_megamind", "real_dissolve", (S("vtest", 0, 60), dissolve(24), S("megamind", 10, 80))),
    Case("dissolve_same_film", "real_dissolve", (S("megamind", 20, 90), dissolve(8), S("megamind", 205, 265))),
    Case("dissolve_long", "real_dissolve", (S("cup", 0, 80), dissolve(40), S("vtest", 200, 280))),
    Case("dissolve_then_cut", "real_dissolve", (S("box", 200, 260), dissolve(16), S("megamind", 110, 150), CUT, S("cup", 0, 40))),
    Case("dissolve_early", "real_dissolve", (S("megamind", 130, 146), dissolve(14), S("box", 0, 70))),
    Case("dissolve_stills", "real_dissolve", (S("img:building.jpg", 0, 50), dissolve(20), S("img:leuvenA.jpg", 0, 50))),
    Case("dissolve_cup_megamind", "real_dissolve", (S("cup", 0, 60), dissolve(30), S("megamind", 205, 265))),
    # --- fades -------------------------------------------------------------------------------
    Case("fade_box_cup", "real_fade", (S("box", 0, 60), Join("fade", 15, 0, 15), S("cup", 0, 60))),
    Case("fade_hold", "real_fade", (S("megamind", 30, 90), Join("fade", 20, 10, 20), S("vtest", 0, 60))),
    Case("fadeblack_xfade", "real_fade", (S("cup", 0, 60), Join("fadeblack", 20), S("box", 100, 160))),
    Case("fade_in_start", "real_leader", (S("box", 0, 90, fade_in=15),), "fade from black at the start: a leader"),
    Case("fade_out_end", "real_leader", (S("cup", 0, 90, fade_out=20),), "fade to black at the end: a tail"),
    Case("fade_in_then_cut", "real_fade", (S("vtest", 0, 60, fade_in=10), CUT, S("megamind", 100, 150))),
    Case("fade_quick", "real_fade", (S("megamind", 150, 199), Join("fade", 8, 5, 8), S("megamind", 200, 250))),
    # --- traps: no transition ----------------------------------------------------------------
    Case("flash_vtest", "trap_flash", (S("vtest", 0, 100, fx=flash([40])),), "one white frame"),
    Case("flash_box_two", "trap_flash", (S("box", 0, 100, fx=flash([30, 70])),)),
    Case("flash_cup_partial", "trap_flash", (S("cup", 0, 100, fx=flash([45, 46], 0.6)),), "two frames at 60% white"),
    Case("strobe_megamind", "trap_strobe", (S("megamind", 2, 97, fx=flash([30, 32, 34, 36, 38, 40])),)),
    Case("strobe_long", "trap_strobe", (S("vtest", 100, 200, fx=flash(list(range(30, 52, 2)))),), "white every other frame, 22 frames"),
    Case("whip_vtest", "trap_whip", (S("vtest", 0, 100, pre="scale=1536:1152," + whip(start=40, frames=6, dx=900, dy=300, x0=100, y0=200)),)),
    Case("whip_box", "trap_whip", (S("box", 0, 100, pre="scale=960:720," + whip(start=50, frames=5, dx=480, dy=0, drift=0.5)),)),
    Case("whip_building", "trap_whip", (S("img:building.jpg", 0, 80, pre="scale=-2:540," + whip(start=35, frames=4, dx=290, drift=0.4)),)),
    Case("whip_aloe", "trap_whip", (S("img:aloeL.jpg", 0, 90, pre="scale=-2:720," + whip(start=30, frames=6, dx=-300, dy=300, x0=350, y0=20)),)),
    Case("whip_then_cut", "trap_whip", (S("vtest", 200, 280, pre="scale=1536:1152," + whip(start=30, frames=5, dx=-800, x0=950, y0=400)), CUT, S("cup", 0, 50))),
    Case("flash_then_cut", "trap_flash", (S("box", 0, 60, fx=flash([20])), CUT, S("vtest", 0, 50))),
    Case("zoom_still", "trap_motion", (S("img:starry_night.jpg", 0, 100, pre="scale=1504:1200,zoompan=z='1+0.006*on':d=1:x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':s=480x360:fps=25"),), "slow zoom-in"),
    Case("steady_pan", "trap_motion", (S("vtest", 0, 120, pre="scale=1536:1152," + whip(start=1000, frames=1, dx=0, x0=0, y0=300, drift=8.0)),), "8 px/frame pan"),
    Case("dimming", "trap_motion", (S("cup", 0, 100, fx="eq=eval=frame:brightness='-0.3*min(1,max(0,(t-1.2)/1.2))'"),), "lights dim by 30%"),
    # --- added after the robust detector's rules were fixed (held out from its design) ----------
    Case("dissolve_short", "real_dissolve", (S("box", 100, 160), dissolve(6), S("vtest", 300, 360)), "held out"),
    Case("dissolve_very_long", "real_dissolve", (S("megamind", 2, 90), dissolve(60), S("cup", 60, 150)), "held out: 2.4 s"),
    Case("whip_starry", "trap_whip", (S("img:starry_night.jpg", 0, 80, pre="scale=-2:720," + whip(start=40, frames=5, dx=380, dy=-300, y0=340)),), "held out"),
    Case("shake", "trap_motion", (S("box", 100, 200, pre="scale=960:720,crop=w=480:h=360:x='240+60*sin(n*2.1)*cos(n*0.7)':y='180+40*sin(n*1.3+1)'"),), "held out: hand-held shake"),
    # --- black leaders and tails (added with the leader rule) ----------------------------------
    Case("leader_black_cut", "real_leader", (S("black", 0, 12), CUT, S("box", 0, 70), CUT, S("cup", 0, 60)), "12 black frames, then two shots"),
    Case("tail_black_cut", "real_leader", (S("vtest", 0, 80), CUT, S("cup", 0, 60), CUT, S("black", 0, 15)), "two shots, then 15 black frames"),
    Case("leader_tail_fades", "real_leader", (S("box", 0, 100, fade_in=20), CUT, S("vtest", 0, 80, fade_out=20))),
    Case("megamind_opening", "real_leader", (S("megamind", 0, 130),), "the trailer's own opening: black frame, first shot, cut at 98"),
    # --- synthetic (lavfi) ---------------------------------------------------------------------
    Case("lavfi_cuts", "synthetic", (S("lavfi:testsrc2", 0, 40), CUT, S("lavfi:mandelbrot", 0, 40), CUT, S("lavfi:smptebars", 0, 30))),
    Case("lavfi_dissolve", "synthetic", (S("lavfi:mandelbrot", 0, 50), dissolve(20), S("lavfi:testsrc2", 0, 50))),
    Case("lavfi_cut_at_3", "synthetic", (S("lavfi:color=c=navy", 0, 3), CUT, S("lavfi:testsrc2", 0, 60))),
    Case("lavfi_flashes", "synthetic", (S("lavfi:testsrc2", 0, 90, fx=flash([20, 50, 51, 75])),)),
]

QUICK = {
    "vtest_a", "box_b", "cut_box_cup", "cut_three", "cut_at_1", "cut_last_frame", "megamind_154_200",
    "dissolve_box_cup", "dissolve_long", "fade_hold", "fade_in_start", "flash_vtest", "strobe_long",
    "whip_vtest", "whip_building", "lavfi_cuts", "leader_black_cut", "tail_black_cut", "megamind_opening",
    "megamind_avi_from_98",
}
"""The ``--quick`` subset (plus both originals): every category, a third of the videos."""


def fetch_opencv_doc(cache: Path, deb: Path | None = None) -> Path:
    """Unpack opencv-doc into ``cache`` (downloading it with ``apt-get download`` if no .deb is
    there or given) and gunzip its two mp4 samples. Returns the unpacked root."""
    root = cache / "root"
    if (root / SOURCES["megamind"]).exists() and (root / "box.mp4").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    if deb is None:
        found = sorted(cache.glob("opencv-doc_*.deb"))
        if not found:
            log.info("downloading opencv-doc with apt-get into %s", cache)
            subprocess.run(["apt-get", "download", "opencv-doc"], cwd=cache, check=True)
            found = sorted(cache.glob("opencv-doc_*.deb"))
        deb = found[-1]
    root.mkdir(exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    for name in ("box", "cup"):
        with gzip.open(root / DOC / f"opencv4/html/{name}.mp4.gz") as src, open(root / f"{name}.mp4", "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


def _input_args(seg: Seg, root: Path) -> list[str]:
    if seg.src.startswith("img:"):
        return ["-loop", "1", "-framerate", str(FPS), "-i", str(root / DOC / "examples/data" / seg.src[4:])]
    if seg.src.startswith("lavfi:"):
        spec = seg.src[6:]
        sep = ":" if "=" in spec else "="
        return ["-f", "lavfi", "-i", f"{spec}{sep}size={SIZE[0]}x{SIZE[1]}:rate={FPS}"]
    if seg.src == "black":
        return ["-f", "lavfi", "-i", f"color=c=black:size={SIZE[0]}x{SIZE[1]}:rate={FPS}"]
    return ["-i", str(root / SOURCES[seg.src])]


def _chain(i: int, seg: Seg, fade_in: int, fade_out: int) -> str:
    steps = [f"trim=start_frame={seg.start}:end_frame={seg.end}", f"settb=1/{FPS}", "setpts=N", f"fps={FPS}:eof_action=pass"]
    if seg.pre:
        steps.append(seg.pre)
    steps.append(f"scale={SIZE[0]}:{SIZE[1]}:flags=bicubic")
    if seg.fx:
        steps.append(seg.fx)
    if fade_in:
        steps.append(f"fade=t=in:start_frame=0:nb_frames={fade_in}")
    if fade_out:
        # black on the segment's last frame: ramp over the fade_out-1 frames before it
        steps.append(f"fade=t=out:start_frame={seg.frames - fade_out - 1}:nb_frames={fade_out}")
    steps += ["setsar=1", "format=yuv420p", f"settb=1/{FPS}"]
    return f"[{i}:v]" + ",".join(steps) + f"[s{i}]"


def plan(case: Case) -> tuple[list[Seg], list[str], list[Transition], int]:
    """Inputs, filter graph lines and labels for one case. Returns (segments as inputs, graph
    lines, labels, frame count)."""
    segs = [p for p in case.parts[0::2]]
    joins = [p for p in case.parts[1::2]]
    if not all(isinstance(p, Seg) for p in segs) or not all(isinstance(j, Join) for j in joins):
        raise ValueError(f"{case.name}: parts must alternate Seg, Join, Seg...")
    # A fade join becomes fade filters on both sides (and a black segment when it holds black);
    # everything is then a chain of concat (cut) and xfade links between inputs.
    inputs: list[tuple[Seg, int, int]] = []  # (segment, fade_in, fade_out)
    links: list[Join] = []
    after: list[int] = []  # per original join: input index of the segment after it
    for k, seg in enumerate(segs):
        assert isinstance(seg, Seg)
        fin = joins[k - 1].length_in if k > 0 and joins[k - 1].kind == "fade" else seg.fade_in  # type: ignore[union-attr]
        fout = joins[k].length if k < len(joins) and joins[k].kind == "fade" else seg.fade_out  # type: ignore[union-attr]
        inputs.append((seg, fin, fout))
        if k < len(joins):
            j = joins[k]
            assert isinstance(j, Join)
            if j.kind == "fade" and j.hold:
                inputs.append((Seg("black", 0, j.hold), 0, 0))
                links.append(CUT)
            links.append(CUT if j.kind == "fade" else j)
            after.append(len(inputs))
    lines = [_chain(i, s, fin, fout) for i, (s, fin, fout) in enumerate(inputs)]
    starts = [0]
    total = inputs[0][0].frames
    acc = "s0"
    for i, link in enumerate(links):
        nxt = inputs[i + 1][0]
        if link.kind == "cut":
            lines.append(f"[{acc}][s{i + 1}]concat=n=2:v=1:a=0,settb=1/{FPS}[a{i + 1}]")
            starts.append(total)
            total += nxt.frames
        else:
            offset = total - link.length
            mode = "fade" if link.kind == "dissolve" else "fadeblack"
            lines.append(
                f"[{acc}][s{i + 1}]xfade=transition={mode}:duration={link.length / FPS:.6f}"
                f":offset={offset / FPS:.6f},settb=1/{FPS}[a{i + 1}]"
            )
            starts.append(offset)
            total += nxt.frames - link.length
        acc = f"a{i + 1}"
    lines.append(f"[{acc}]null[out]")

    labels: list[Transition] = []
    first, last = segs[0], segs[-1]
    assert isinstance(first, Seg) and isinstance(last, Seg)
    if first.fade_in:
        labels.append(_gradual("fade", 0, first.fade_in - 1))
    if last.fade_out:
        labels.append(_gradual("fade", total - last.fade_out, total - 1))
    for k, j in enumerate(joins):
        assert isinstance(j, Join)
        b = after[k]
        if j.kind == "cut":
            labels.append(Transition(starts[b], "cut", starts[b], starts[b]))
        elif j.kind in ("dissolve", "fadeblack"):
            # xfade: frame `offset` is still pure A, the next length-1 frames mix, then pure B.
            labels.append(_gradual("dissolve" if j.kind == "dissolve" else "fade", starts[b] + 1, starts[b] + j.length - 1))
        else:
            a = b - (2 if j.hold else 1)
            labels.append(_gradual("fade", starts[a] + inputs[a][0].frames - j.length, starts[b] + j.length_in - 1))
    for seg, start in zip(segs, [0] + [starts[b] for b in after]):
        assert isinstance(seg, Seg)
        if seg.src == "megamind":  # the trailer's own cuts inside a segment
            labels += [Transition(start + c - seg.start, "cut", start + c - seg.start, start + c - seg.start)
                       for c in MEGAMIND_CUTS if seg.start < c < seg.end]  # fmt: skip
    labels.sort(key=lambda t: t.frame)
    return [s for s, _, _ in inputs], lines, labels, total


def blank_ends(case: Case, labels: list[Transition], total: int) -> tuple[list[Transition], list[Blank]]:
    """Move the black leader and tail of ``case`` out of ``labels``: a first segment that is black,
    fades in from black or is Megamind from its black frame 0; a last segment that is black or
    fades out to black. Labels starting inside (or on the frame after) a leader, or ending inside
    (or on the frame before) a tail, belong to it."""
    segs = [p for p in case.parts[0::2] if isinstance(p, Seg)]
    blanks: list[Blank] = []
    first, last = segs[0], segs[-1]
    lead = -1
    if first.src == "black":
        lead = first.frames - 1
    elif first.fade_in:
        lead = first.fade_in - 1
    elif first.src == "megamind" and first.start == 0:
        lead = 0
    if lead >= 0:
        blanks.append(Blank("leader", 0, lead))
        labels = [t for t in labels if t.start > lead + 1]
    tail = total
    if len(segs) > 1 and last.src == "black":
        tail = total - last.frames
    elif last.fade_out:
        tail = total - last.fade_out
    if tail < total:
        blanks.append(Blank("tail", tail, total - 1))
        labels = [t for t in labels if t.end < tail - 1]
    if any(s.src == "megamind" and s.start == 0 for s in segs[1:]):
        raise ValueError(f"{case.name}: Megamind's black frame 0 inside a case is not labelled")
    return labels, blanks


def _gradual(kind: str, start: int, end: int) -> Transition:
    return Transition((start + end + 1) // 2, kind, start, end)


def build_case(case: Case, root: Path, out: Path, index: int) -> Entry:
    segs, lines, labels, total = plan(case)
    labels, blanks = blank_ends(case, labels, total)
    name = f"{index:02d}_{case.name}.mp4"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for seg in segs:
        argv += _input_args(seg, root)
    argv += [
        "-filter_complex", ";".join(lines), "-map", "[out]", "-frames:v", str(total), "-an",
        "-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-fps_mode", "passthrough", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        str(out / name),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{case.name}: ffmpeg failed:\n{proc.stderr[-3000:]}")
    return Entry(name, case.name, case.category, total, float(FPS), labels, case.note, blanks)


def build_avi_copy(root: Path, out: Path, name: str, seek: float) -> Entry:
    """A stream copy of Megamind.avi from the keyframe before ``seek`` seconds (packed B-frames
    kept), labelled by matching each of its decoded frames to the original's."""
    import numpy as np

    from tav_pipeline.video import iter_frames

    dst = out / f"00_{name}.avi"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{seek}", "-i", str(root / SOURCES["megamind"]),
            "-map", "0:v", "-c:v", "copy", "-fflags", "+bitexact", str(dst)]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    original = [f.image.astype(np.float32) for f in iter_frames(root / SOURCES["megamind"], width=64)]
    copy = [f.image.astype(np.float32) for f in iter_frames(dst, width=64)]
    offset = int(np.argmin([np.abs(copy[0] - o).mean() for o in original]))
    worst = max(float(np.abs(c - original[offset + k]).mean()) for k, c in enumerate(copy))
    if offset + len(copy) > len(original) or worst > 0.5:
        raise RuntimeError(f"{dst}: its frames are not frames {offset}.. of Megamind.avi (worst mean difference {worst:.2f})")
    cuts = [c - offset for c in MEGAMIND_CUTS if offset < c < offset + len(copy)]
    blanks = [Blank("leader", 0, 0)] if offset == 0 else []
    note = f"stream copy of Megamind.avi from its frame {offset}: mpeg4 with packed B-frames, timestamps shifted by one frame"
    return Entry(dst.name, name, "real_original", len(copy), 2997 / 125, [Transition(c, "cut", c, c) for c in cuts], note, blanks)


def count_frames(path: Path) -> int:
    from tav_pipeline.video import count_frames as count

    return count(path)


def build(out: Path, root: Path, *, quick: bool = False) -> list[Entry]:
    out.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    # The two originals, copied byte for byte.
    mm = out / "00_megamind_original.avi"
    shutil.copyfile(root / SOURCES["megamind"], mm)
    entries.append(
        Entry(mm.name, "megamind_original", "real_original", 270, 2997 / 125,
              [Transition(c, "cut", c, c) for c in MEGAMIND_CUTS], "as shipped: mpeg4 with packed B-frames",
              [Blank("leader", 0, 0)])  # fmt: skip
    )
    for name, seek in AVI_COPIES:
        if not quick or name in QUICK:
            entries.append(build_avi_copy(root, out, name, seek))
    tree = out / "00_tree_original.avi"
    shutil.copyfile(root / SOURCES["tree"], tree)
    entries.append(Entry(tree.name, "tree_original", "real_original", 68, 15.0, [], "as shipped: cinepak, ~1.5 frames/s"))
    for i, case in enumerate(CASES, start=1):
        if quick and case.name not in QUICK:
            continue
        log.info("building %s", case.name)
        entries.append(build_case(case, root, out, i))
    for entry in entries:
        n = count_frames(out / entry.file)
        if n != entry.frames:
            raise RuntimeError(f"{entry.file}: decoded {n} frames, labels say {entry.frames}")
    (out / "labels.json").write_text(
        json.dumps({"fps": FPS, "size": list(SIZE), "quick": quick, "videos": [e.to_dict() for e in entries]}, indent=1) + "\n"
    )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the videos and labels.json")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where opencv-doc is kept (default {DEFAULT_CACHE})")
    parser.add_argument("--deb", type=Path, default=None, help="an opencv-doc .deb already on disk (skips apt-get)")
    parser.add_argument("--quick", action="store_true", help="build the small subset only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    root = fetch_opencv_doc(args.cache, args.deb)
    entries = build(args.out, root, quick=args.quick)
    n_tr = sum(len(e.transitions) for e in entries)
    log.info("%d videos, %d transitions, %d frames -> %s", len(entries), n_tr, sum(e.frames for e in entries), args.out / "labels.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
