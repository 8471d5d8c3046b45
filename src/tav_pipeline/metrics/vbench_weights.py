"""The weight files of the paper's four VBench dimensions: which file each needs, checking them,
and downloading them from the URLs vbench itself uses (rule ``fetch_vbench_weights``).

Stand-in weights for tests and rehearsals are built by :mod:`tav_pipeline.metrics.standin_weights`;
a folder holding them has :data:`STANDIN_MARKER`, one holding downloaded weights :data:`FETCH_MARKER`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tav_pipeline.errors import ConfigError, MissingAssetError

log = logging.getLogger(__name__)

DIMENSIONS: tuple[str, ...] = ("aesthetic_quality", "overall_consistency", "dynamic_degree", "imaging_quality")
"""The four VBench dimensions of the paper's Table 2, in the table's order."""

CLIP_VIT_L14 = "clip_model/ViT-L-14.pt"
"""OpenAI CLIP ViT-L/14, a TorchScript archive (aesthetic quality's image encoder)."""
AESTHETIC_HEAD = "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"
"""LAION aesthetic predictor: the state dict of ``nn.Linear(768, 1)``."""
MUSIQ_SPAQ = "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth"
"""MUSIQ trained on SPAQ: a state dict of pyiqa's ``MUSIQ`` (imaging quality)."""
RAFT_THINGS = "raft_model/models/raft-things.pth"
"""RAFT (full size) trained on FlyingThings: a state dict with ``module.`` prefixes (dynamic degree)."""
VICLIP = "ViCLIP/ViClip-InternVid-10M-FLT.pth"
"""ViCLIP ViT-L/14: ``{"model": state_dict}`` (overall consistency)."""
BPE_VOCAB = "ViCLIP/bpe_simple_vocab_16e6.txt.gz"
"""CLIP's byte-pair vocabulary, read by ViCLIP's tokenizer (the same file ships inside ``clip``)."""

WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "aesthetic_quality": (CLIP_VIT_L14, AESTHETIC_HEAD),
    "overall_consistency": (VICLIP, BPE_VOCAB),
    "dynamic_degree": (RAFT_THINGS,),
    "imaging_quality": (MUSIQ_SPAQ,),
}
"""Files under ``VBENCH_CACHE_DIR`` each dimension reads (vbench 0.1.5's ``init_submodules``)."""

WEIGHT_URLS: dict[str, str] = {
    CLIP_VIT_L14: "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    AESTHETIC_HEAD: "https://github.com/LAION-AI/aesthetic-predictor/blob/main/sa_0_4_vit_l_14_linear.pth?raw=true",
    MUSIQ_SPAQ: "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
    RAFT_THINGS: "https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip",
    VICLIP: "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/ViClip-InternVid-10M-FLT.pth",
    BPE_VOCAB: "https://raw.githubusercontent.com/openai/CLIP/main/clip/bpe_simple_vocab_16e6.txt.gz",
}
"""Where vbench 0.1.5 downloads each file from (RAFT's comes inside ``models.zip``)."""

RAFT_ZIP_MEMBER = "models/raft-things.pth"

STANDIN_MARKER = "STANDIN.json"
"""Written next to stand-in weights; its presence makes every result say ``weights: standin``."""
FETCH_MARKER = "FETCHED.json"
"""Written by :func:`fetch_weights`: which files are there, where they came from, their sizes."""

FETCH_RULE = "fetch_vbench_weights"
STANDIN_RULE = "build_standin_vbench_weights"

Weights = Literal["official", "standin"]


def required_files(dimensions: Sequence[str] = DIMENSIONS) -> list[str]:
    """Files (relative to the cache folder) the given dimensions read, without duplicates."""
    out: list[str] = []
    for dim in dimensions:
        if dim not in WEIGHT_FILES:
            raise ConfigError("evaluate.vbench.dimensions", f"unknown dimension {dim!r}")
        out.extend(f for f in WEIGHT_FILES[dim] if f not in out)
    return out


def weight_paths(cache_dir: str | Path, dimensions: Sequence[str] = DIMENSIONS) -> list[Path]:
    """Absolute-or-relative paths of :func:`required_files` under ``cache_dir`` (for rules)."""
    return [Path(cache_dir) / f for f in required_files(dimensions)]


def weight_sources(cache_dir: str | Path, dimensions: Sequence[str] = DIMENSIONS) -> dict[str, str]:
    """Each of :func:`weight_paths` with the URL :func:`fetch_weights` downloads it from."""
    return {str(Path(cache_dir) / f): WEIGHT_URLS[f] for f in required_files(dimensions)}


def weights_kind(cache_dir: str | Path) -> Weights:
    """``standin`` when ``cache_dir`` holds stand-in weights (its :data:`STANDIN_MARKER`), else ``official``."""
    return "standin" if (Path(cache_dir) / STANDIN_MARKER).exists() else "official"


def check_weights(cache_dir: str | Path, dimensions: Sequence[str], rule: str = FETCH_RULE) -> Weights:
    """Make sure every file the dimensions read is in ``cache_dir`` (so vbench never downloads).

    Returns:
        which weights the folder holds (see :func:`weights_kind`).

    Raises:
        MissingAssetError: naming the first missing file and ``rule``.
    """
    for rel in required_files(dimensions):
        path = Path(cache_dir) / rel
        if not path.is_file():
            raise MissingAssetError(
                path,
                rule,
                f"VBench's {', '.join(d for d in dimensions if rel in WEIGHT_FILES[d])} reads it; "
                f"it is published at {WEIGHT_URLS[rel]}",
            )
    return weights_kind(cache_dir)


def _download(url: str, dst: Path, timeout: float) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URLs
            shutil.copyfileobj(response, out, length=1 << 20)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


def _clip_bpe() -> Path | None:
    try:
        import clip
    except ImportError:
        return None
    path = Path(clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


def fetch_weights(cache_dir: str | Path, dimensions: Sequence[str] = DIMENSIONS, *, timeout: float = 60.0) -> list[Path]:
    """Download the published weights the dimensions need into ``cache_dir`` (files already there
    are kept). The BPE vocabulary is copied from the installed ``clip`` package, which ships the
    same file. RAFT's weights come out of the ``models.zip`` vbench downloads.

    Raises:
        MissingAssetError: a file could not be downloaded (no network, moved URL); names the
            file, this rule and the URL to fetch it from by hand.
    """
    cache = Path(cache_dir)
    marker = cache / STANDIN_MARKER
    if marker.exists():
        raise ConfigError(
            "evaluate.vbench.cache_dir",
            f"{cache} holds stand-in weights ({marker}); fetch the official weights into another folder",
        )
    done: list[Path] = []
    for rel in required_files(dimensions):
        dst = cache / rel
        if dst.is_file():
            log.info("%s: present", dst)
            done.append(dst)
            continue
        url = WEIGHT_URLS[rel]
        try:
            if rel == BPE_VOCAB and _clip_bpe() is not None:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(_clip_bpe(), dst)  # type: ignore[arg-type]
            elif rel == RAFT_THINGS:
                with tempfile.TemporaryDirectory(dir=cache) as tmp:
                    archive = Path(tmp) / "models.zip"
                    _download(url, archive, timeout)
                    with zipfile.ZipFile(archive) as zf, zf.open(RAFT_ZIP_MEMBER) as src:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        with open(dst, "wb") as out:
                            shutil.copyfileobj(src, out)
            else:
                log.info("downloading %s -> %s", url, dst)
                _download(url, dst, timeout)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise MissingAssetError(dst, FETCH_RULE, f"download from {url} failed ({exc}); place the file there by hand") from exc
        log.info("%s: %.1f MB", dst, dst.stat().st_size / 1e6)
        done.append(dst)
    record = cache / FETCH_MARKER
    previous = json.loads(record.read_text()) if record.exists() else {"files": {}}
    for path in done:
        rel = path.relative_to(cache).as_posix()
        previous["files"][rel] = {"url": WEIGHT_URLS[rel], "bytes": path.stat().st_size}
    record.write_text(json.dumps(previous, indent=2) + "\n")
    return done


def fetch_weights_step(cache_dir: str | Path, dimensions: Sequence[str], timeout: float = 60.0) -> list[Path]:
    """Rule ``fetch_vbench_weights``."""
    return fetch_weights(cache_dir, dimensions, timeout=timeout)
