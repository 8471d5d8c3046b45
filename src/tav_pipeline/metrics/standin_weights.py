"""Stand-in VBench weights: random weights in the exact formats vbench 0.1.5 loads, built offline.

With these in ``VBENCH_CACHE_DIR`` the real vbench code path (model construction, checkpoint
loading, preprocessing, forward passes, scoring arithmetic) runs on a CPU with no network, which is
what the tests and the demo need. The **scores carry no information** about the videos (except
where noted below); every result computed with them says ``weights: standin`` (the folder holds
:data:`~tav_pipeline.metrics.vbench_weights.STANDIN_MARKER`).

=======================  ==========================================================================
file                     stand-in
=======================  ==========================================================================
``ViT-L-14.pt``          a *traced TorchScript* ``clip.model.CLIP`` (``forward``, ``encode_image``,
                         ``encode_text``; buffers ``input_resolution``/``context_length``/
                         ``vocab_size`` like OpenAI's archives). ``clip.load(jit=False)`` rebuilds
                         the model from the archive's state dict and infers its size, so the
                         stand-in is small: 224 px input, 32 px patches, width 64, one layer per
                         tower, but the real 768-d embedding the aesthetic head needs.
``sa_0_4_..._linear``    ``nn.Linear(768, 1)`` state dict; bias ``aesthetic_bias`` (default 5, the
                         middle of LAION's 1-10 scale).
``musiq_spaq_...pth``    pyiqa's full-size ``MUSIQ`` state dict (random init); head bias
                         ``musiq_bias`` (default 50, the middle of the 0-100 scale).
``raft-things.pth``      vbench's full-size RAFT state dict with ``module.`` prefixes (as saved by
                         ``DataParallel``), random init, except the last flow convolution
                         (``update_block.flow_head.conv2``): its weight is zero and its bias is
                         ``raft_flow_bias``. Every GRU iteration then adds exactly that bias to the
                         1/8-scale flow, so after vbench's 20 iterations and RAFT's 8x convex
                         upsampling every interior pixel moves ``160 * raft_flow_bias`` pixels:
                         the magnitudes vbench computes are known in advance, whatever the video
                         (frames at least 128 px on the short side; see
                         :data:`~tav_pipeline.metrics.vbench.RAFT_MIN_SIDE`).
                         The default bias (0, 0) gives zero flow: every video is static.
``ViClip-...-FLT.pth``   ``{"model": state_dict}`` of vbench's full-size ``ViCLIP`` (ViT-L/14
                         vision + 12-layer text tower, ~428M parameters, ~1.7 GB). ViCLIP leaves
                         some parameters uninitialised (``torch.empty``) because real weights
                         overwrite them; here every parameter is drawn explicitly.
``bpe_simple_vocab...``  the real file, copied from the installed ``clip`` package.
=======================  ==========================================================================
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.metrics.vbench_weights import (
    AESTHETIC_HEAD,
    BPE_VOCAB,
    CLIP_VIT_L14,
    DIMENSIONS,
    FETCH_MARKER,
    MUSIQ_SPAQ,
    RAFT_THINGS,
    STANDIN_MARKER,
    STANDIN_RULE,
    VICLIP,
    required_files,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StandinConfig:
    """``evaluate.vbench.standin`` in config.yaml."""

    seed: int = 0
    raft_flow_bias: tuple[float, float] = (0.0, 0.0)
    """(x, y) flow added by each RAFT iteration at 1/8 scale; the predicted flow is ``160 *`` this
    at every interior pixel (see the module docstring)."""
    aesthetic_bias: float = 5.0
    musiq_bias: float = 50.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandinConfig:
        check_keys("evaluate.vbench.standin", d, cls)
        d = dict(d)
        if "raft_flow_bias" in d:
            bias = tuple(float(x) for x in d["raft_flow_bias"])
            if len(bias) != 2:
                raise ConfigError("evaluate.vbench.standin.raft_flow_bias", "needs two values (x, y)")
            d["raft_flow_bias"] = bias
        return cls(**d)


RAFT_ITERS = 20
"""Iterations vbench's dynamic degree runs RAFT for."""
RAFT_UPSAMPLE = 8


def expected_raft_magnitude(flow_bias: Sequence[float]) -> float:
    """The flow magnitude (pixels) the stand-in RAFT predicts at every interior pixel:
    ``20 iterations * 8x upsampling * |flow_bias|``. Float32 rounding of RAFT's coordinate grids
    moves the computed value by about 1e-4 pixels."""
    bx, by = (float(b) for b in flow_bias)
    return RAFT_ITERS * RAFT_UPSAMPLE * math.hypot(bx, by)


def _seeded(seed: int) -> Any:
    import torch

    ctx = torch.random.fork_rng(devices=[])
    ctx.__enter__()
    torch.manual_seed(seed)
    return ctx


def build_clip(path: str | Path, seed: int = 0) -> Path:
    """A traced TorchScript ``clip.model.CLIP`` that ``clip.load`` accepts (see module docstring)."""
    import torch
    from clip.model import CLIP

    ctx = _seeded(seed)
    try:
        model = CLIP(
            embed_dim=768,
            image_resolution=224,
            vision_layers=1,
            vision_width=64,
            vision_patch_size=32,
            context_length=77,
            vocab_size=49408,
            transformer_width=64,
            transformer_heads=1,
            transformer_layers=1,
        ).eval()
    finally:
        ctx.__exit__(None, None, None)
    # OpenAI's archives carry these three as tensors in the state dict (build_model drops them).
    for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(model, name):
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    image = torch.zeros(1, 3, 224, 224)
    text = torch.zeros(1, 77, dtype=torch.long)
    text[0, 0], text[0, 1] = 49406, 49407  # <start>, <end>
    with torch.no_grad():
        traced = torch.jit.trace_module(  # type: ignore[no-untyped-call]
            model,
            {"forward": (image, text), "encode_image": (image,), "encode_text": (text,)},
            check_trace=False,
        )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(out))
    return out


def build_aesthetic_head(path: str | Path, seed: int = 0, bias: float = 5.0) -> Path:
    """``nn.Linear(768, 1)`` state dict (LAION's aesthetic predictor format)."""
    import torch
    from torch import nn

    ctx = _seeded(seed + 1)
    try:
        head = nn.Linear(768, 1)
    finally:
        ctx.__exit__(None, None, None)
    with torch.no_grad():
        head.bias.fill_(bias)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), out)
    return out


def build_musiq(path: str | Path, seed: int = 0, bias: float = 50.0) -> Path:
    """pyiqa ``MUSIQ`` (vbench's constructor arguments) state dict, random init."""
    import torch
    from pyiqa.archs.musiq_arch import MUSIQ

    ctx = _seeded(seed + 2)
    try:
        model = MUSIQ(pretrained=False)
    finally:
        ctx.__exit__(None, None, None)
    with torch.no_grad():
        model.head.bias.fill_(bias)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    return out


def build_raft(path: str | Path, seed: int = 0, flow_bias: Sequence[float] = (0.0, 0.0)) -> Path:
    """vbench's RAFT (``small=False``) state dict with ``module.`` prefixes; the last flow
    convolution predicts the constant ``flow_bias`` (see module docstring)."""
    import torch
    from easydict import EasyDict
    from vbench.third_party.RAFT.core.raft import RAFT

    ctx = _seeded(seed + 3)
    try:
        model = RAFT(EasyDict({"small": False, "mixed_precision": False, "alternate_corr": False}))
    finally:
        ctx.__exit__(None, None, None)
    conv2 = model.update_block.flow_head.conv2
    with torch.no_grad():
        conv2.weight.zero_()
        conv2.bias.copy_(torch.tensor([float(b) for b in flow_bias]))
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


def initialise_all(module: Any, seed: int) -> None:
    """Draw every parameter of ``module`` explicitly (biases 0, 1-D norm weights 1, the rest
    N(0, 0.02); a scalar keeps its value), so none is left as ``torch.empty`` garbage."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if p.ndim == 0:
                if not torch.isfinite(p):
                    p.fill_(0.01)
            elif leaf == "bias" or leaf.endswith("_bias"):
                p.zero_()
            elif p.ndim == 1 and leaf == "weight":
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        bad = [n for n, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise RuntimeError(f"parameters left non-finite: {bad}")


def build_viclip(path: str | Path, bpe_path: str | Path, seed: int = 0) -> Path:
    """``{"model": state_dict}`` of vbench's full-size ``ViCLIP``, every parameter drawn."""
    import torch
    from vbench.third_party.ViCLIP.simple_tokenizer import SimpleTokenizer
    from vbench.third_party.ViCLIP.viclip import ViCLIP

    model = ViCLIP(tokenizer=SimpleTokenizer(str(bpe_path)), pretrain=None)
    initialise_all(model, seed + 4)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, out)
    del model
    return out


def copy_bpe(path: str | Path) -> Path:
    """CLIP's BPE vocabulary, copied from the installed ``clip`` package (no download)."""
    try:
        import clip
    except ImportError as exc:
        raise MissingAssetError(path, STANDIN_RULE, "install openai-clip (it ships the vocabulary)") from exc
    src = Path(clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not src.is_file():
        raise MissingAssetError(path, STANDIN_RULE, f"the clip package has no {src.name}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out)
    return out


def builder_fingerprint() -> str:
    """A hash of this module's source: changes whenever the stand-ins would change (cache key)."""
    return hashlib.sha1(inspect.getsource(inspect.getmodule(build_clip)).encode()).hexdigest()[:12]  # type: ignore[arg-type]


def _prepare_import(cache: Path, viclip: bool) -> None:
    """vbench reads ``VBENCH_CACHE_DIR`` when first imported, and importing ViCLIP's tokenizer
    downloads the BPE vocabulary into it when missing: point it here and put the vocabulary in
    place first, so building never touches the network."""
    if "vbench.utils" not in sys.modules:
        os.environ["VBENCH_CACHE_DIR"] = str(cache.resolve())
        if viclip and not (cache / BPE_VOCAB).exists():
            copy_bpe(cache / BPE_VOCAB)
        return
    current = Path(str(sys.modules["vbench.utils"].CACHE_DIR))
    if viclip and "vbench.third_party.ViCLIP.simple_tokenizer" not in sys.modules and not (current / BPE_VOCAB).exists():
        raise ConfigError(
            "evaluate.vbench.cache_dir",
            f"vbench was imported with VBENCH_CACHE_DIR={current}, which has no {BPE_VOCAB}; "
            "importing ViCLIP would try to download it. Build stand-ins in a fresh process",
        )


def build_standin_weights(cache_dir: str | Path, dimensions: Sequence[str] = DIMENSIONS, config: StandinConfig = StandinConfig()) -> list[Path]:
    """Write stand-in weights for ``dimensions`` into ``cache_dir`` plus the stand-in marker.

    Requires vbench's dependencies (torch, openai-clip, pyiqa, easydict, einops, timm). Takes about
    half a minute on two CPU cores with overall consistency (ViCLIP is ~1.7 GB), a few seconds
    without.

    Raises:
        ConfigError: ``cache_dir`` already holds weights that are not stand-ins (refuses to
            overwrite official weights).
    """
    cache = Path(cache_dir)
    files = required_files(dimensions)
    marker = cache / STANDIN_MARKER
    real = [f for f in files if f != BPE_VOCAB and (cache / f).exists()]
    if (cache / FETCH_MARKER).exists():
        real.insert(0, FETCH_MARKER)
    if real and not marker.exists():
        raise ConfigError(
            "evaluate.vbench.cache_dir",
            f"{cache} already holds weights that are not stand-ins ({real[0]}); build stand-ins in another folder",
        )
    cache.mkdir(parents=True, exist_ok=True)
    # The marker goes first, so a folder left half-built by a crash is still known as ours.
    marker.write_text(json.dumps({"standin": True, "complete": False}) + "\n")
    _prepare_import(cache, VICLIP in files)
    built: list[Path] = []
    for rel in files:
        dst = cache / rel
        log.info("building stand-in %s", dst)
        if rel == CLIP_VIT_L14:
            build_clip(dst, config.seed)
        elif rel == AESTHETIC_HEAD:
            build_aesthetic_head(dst, config.seed, config.aesthetic_bias)
        elif rel == MUSIQ_SPAQ:
            build_musiq(dst, config.seed, config.musiq_bias)
        elif rel == RAFT_THINGS:
            build_raft(dst, config.seed, config.raft_flow_bias)
        elif rel == BPE_VOCAB:
            copy_bpe(dst)
        elif rel == VICLIP:
            bpe = cache / BPE_VOCAB
            if not bpe.exists():
                copy_bpe(bpe)
            build_viclip(dst, bpe, config.seed)
        built.append(dst)
    info = {
        "standin": True,
        "complete": True,
        "note": "random weights in vbench 0.1.5's formats; scores carry no information",
        "config": {**asdict(config), "raft_flow_bias": list(config.raft_flow_bias)},
        "raft_interior_flow_magnitude": expected_raft_magnitude(config.raft_flow_bias),
        "dimensions": list(dimensions),
        "files": files,
        "builder": builder_fingerprint(),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return built


def build_standin_weights_step(cache_dir: str | Path, dimensions: Sequence[str], standin: dict[str, Any]) -> list[Path]:
    """Rule ``build_standin_vbench_weights``."""
    return build_standin_weights(cache_dir, dimensions, StandinConfig.from_dict(standin))
