"""Place a tiny stand-in of every external asset the shipped config.yaml reads, in the same format
and at the path config.yaml names, so that `snakemake --profile profiles/rehearsal` runs the
paper's DAG end to end on a CPU (README: "The rehearsal").

    python tests/rehearsal/standins.py ROOT        # ROOT: a clone of the workflow

What goes where (the paths are config.yaml's):

* Panda-70M metadata (``source.metadata_csv``) and its videos (``resources/videos``): the demo
  corpus, seventeen synthetic videos with known cuts and broken inputs;
* BLIP (``captions.model``): a tiny random BLIP of the real classes;
* Open-Sora-Plan (``train.opensora.repo``, ``pretrained``, ``ae_path``, mT5-XXL in ``cache_dir``):
  a stand-in checkout of its trainer and sampler, and weight folders in the real layout;
* the baselines of Table 1 (``generate.baselines.*.pretrained``): tiny random CogVideoX and
  EasyAnimate pipelines of the real diffusers classes;
* VBench (``evaluate.vbench.cache_dir``): random weights in the real file formats (every table
  then says ``standin``).

Nothing already at a path is replaced. Every placed file is dated ``PLACED_MTIME`` (years before
any clone), as assets downloaded long ago are, and :func:`fingerprint` lets a test check that the
run left them byte for byte as placed.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import yaml

PLACED_MTIME = 1_500_000_000
"""2017-07-14: older than every script of the workflow."""


def _date(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (PLACED_MTIME, PLACED_MTIME), follow_symlinks=False)


def _place(path: Path, build: Any, placed: list[Path]) -> None:
    if os.path.lexists(path):
        return
    build(path)
    _date(path)
    placed.append(path)


def place_all(root: str | Path) -> list[Path]:
    """Every stand-in at ``root``'s config.yaml paths; returns what was placed."""
    from rehearsal.opensora_standin import build_checkout, build_weights
    from tav_pipeline import demo
    from tav_pipeline.metrics.standin_weights import StandinConfig, build_standin_weights
    from tav_pipeline.tiny_cogvideox import build_tiny_cogvideox
    from tav_pipeline.tiny_easyanimate import build_tiny_easyanimate
    from tav_pipeline.tiny_models import build_tiny_blip

    root = Path(root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    overrides = yaml.safe_load((root / "profiles" / "rehearsal" / "overrides.yaml").read_text())
    placed: list[Path] = []

    def corpus(videos: Path) -> None:
        demo.build_corpus(videos, root / config["source"]["metadata_csv"], root / "resources" / "truth.json")

    _place(root / overrides["source"]["video_dir"], corpus, placed)
    placed.append(root / config["source"]["metadata_csv"])
    _date(root / config["source"]["metadata_csv"])
    _place(root / config["captions"]["model"], lambda p: build_tiny_blip(p, seed=0), placed)

    osp = config["train"]["opensora"]
    _place(root / osp["repo"], build_checkout, placed)
    encoder = root / osp["cache_dir"] / ("models--" + osp["text_encoder_name_1"].replace("/", "--"))
    if not any(os.path.lexists(p) for p in (root / osp["pretrained"], root / osp["ae_path"], encoder)):
        build_weights(root / osp["pretrained"], root / osp["ae_path"], root / osp["cache_dir"], osp["text_encoder_name_1"])
        for p in (root / osp["pretrained"], root / osp["ae_path"], encoder):
            _date(p)
            placed.append(p)

    builders = {"cogvideox": build_tiny_cogvideox, "easyanimate": build_tiny_easyanimate}
    for name, spec in config["generate"]["baselines"].items():
        _place(root / spec["pretrained"], lambda p, b=builders[name]: b(p, seed=0), placed)

    vbench = config["evaluate"]["vbench"]
    dims = overrides["evaluate"]["vbench"]["dimensions"]
    _place(root / vbench["cache_dir"], lambda p: build_standin_weights(p, dims, StandinConfig()), placed)
    return placed


def fingerprint(paths: list[Path]) -> dict[str, tuple[str, float]]:
    """SHA-256 and mtime of every file under ``paths``."""
    out = {}
    for path in paths:
        for f in sorted([path, *path.rglob("*")] if path.is_dir() else [path]):
            if f.is_file() and not f.is_symlink():
                out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for p in place_all(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(p)
