"""STAND-IN FOR TESTS: an Open-Sora-Plan v1.3.1 checkout and weights, tiny, in the layout and
formats of the real ones, at the paths a run's ``train.opensora`` settings name.

* :func:`build_checkout`: ``opensora/train/train_t2v_diffusers.py`` and ``opensora/sample/sample.py``
  (copied from ``opensora_checkout/`` beside this file): a trainer and a sampler that take
  v1.3.1's flags and read and write its files, on a CPU in seconds (see their docstrings).
* :func:`build_weights`: ``pretrained/`` (``config.json`` of an ``OpenSoraT2V_v1_3`` with the
  run's sparse-attention and interpolation settings + ``diffusion_pytorch_model.safetensors``),
  ``ae_path/`` (a ``WFVAEModel`` ``config.json`` + ``merged.ckpt``) and the text encoder in the
  hub cache (``models--google--mt5-xxl/{refs,snapshots,blobs}``), all with a few random weights.
* :func:`build_assets`: both, where a ``train:`` config section points.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHECKOUT_SOURCE = Path(__file__).resolve().parent / "opensora_checkout"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
VAE_CHECKPOINT = "merged.ckpt"
HIDDEN = 16
"""Width of the stand-in transformer and text encoder (the real ones: 2304 and 4096)."""
LATENT_CHANNELS = {"WFVAEModel_D8_4x8x8": 8, "WFVAEModel_D16_4x8x8": 16, "WFVAEModel_D32_4x8x8": 32, "WFVAEModel_D32_8x8x8": 32}
SNAPSHOT = "0000000000000000000000000000000000000000"
"""The stand-in text encoder's hub revision (``refs/main``)."""


def build_checkout(repo: str | Path, *, git: bool = False) -> Path:
    """Write the stand-in checkout into ``repo`` (replacing the ``opensora`` package there).

    Arguments:
        git: also make ``repo`` a git repository with one commit (its HEAD can then be
            ``train.opensora.commit`` with ``check_commit: true``).

    Returns:
        ``repo``.
    """
    root = Path(repo)
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / "opensora", ignore_errors=True)
    shutil.copytree(CHECKOUT_SOURCE / "opensora", root / "opensora", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "README.md").write_text("STAND-IN FOR TESTS: not Open-Sora-Plan (tests/rehearsal/opensora_standin.py).\n")
    if git:
        cmd = ["git", "-C", str(root), "-c", "user.email=standin@example.invalid", "-c", "user.name=stand-in"]
        subprocess.run([*cmd, "init", "-q"], check=True)
        subprocess.run([*cmd, "add", "-A"], check=True)
        subprocess.run([*cmd, "commit", "-qm", "Open-Sora-Plan stand-in for tests"], check=True)
    return root


def head_commit(repo: str | Path) -> str:
    """The HEAD commit of a checkout built with ``git=True``."""
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _random(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.02).astype(np.float32)


def build_weights(
    pretrained: str | Path,
    ae_path: str | Path,
    cache_dir: str | Path,
    text_encoder_name: str = "google/mt5-xxl",
    *,
    ae: str = "WFVAEModel_D8_4x8x8",
    sparse1d: bool = True,
    sparse_n: int = 4,
    interpolation_scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
    seed: int = 0,
) -> None:
    """Write the three weight folders a run reads.

    Arguments:
        pretrained: the transformer folder (``train.opensora.pretrained``).
        ae_path: the VAE folder (``train.opensora.ae_path``).
        cache_dir: the hub cache (``train.opensora.cache_dir``); the text encoder goes there
            unless ``text_encoder_name`` is a folder path, which is then written instead.
        ae: the VAE name (its latent channels size the transformer).
        sparse1d, sparse_n, interpolation_scale: the transformer config's values
            (``interpolation_scale`` is ``(t, h, w)``).
        seed: the random weights' seed.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    latent = LATENT_CHANNELS[ae]
    patch = 2
    transformer = {
        "_class_name": "OpenSoraT2V_v1_3",
        "_diffusers_version": "0.30.0",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": HIDDEN // 2,
        "caption_channels": HIDDEN,
        "cross_attention_dim": HIDDEN,
        "double_self_attention": False,
        "dropout": 0.0,
        "in_channels": latent,
        "interpolation_scale_t": interpolation_scale[0],
        "interpolation_scale_h": interpolation_scale[1],
        "interpolation_scale_w": interpolation_scale[2],
        "norm_elementwise_affine": False,
        "norm_eps": 1e-06,
        "num_attention_heads": 2,
        "num_layers": 1,
        "only_cross_attention": False,
        "out_channels": latent,
        "patch_size": patch,
        "patch_size_t": 1,
        "sample_size_h": 32,
        "sample_size_t": 9,
        "sample_size_w": 32,
        "sparse1d": sparse1d,
        "sparse_n": sparse_n,
        "upcast_attention": False,
    }
    tensors = {
        "pos_embed.proj.weight": _random(rng, HIDDEN, latent, patch, patch),
        "pos_embed.proj.bias": _random(rng, HIDDEN),
        "caption_projection.linear_1.weight": _random(rng, HIDDEN, HIDDEN),
        "transformer_blocks.0.attn1.to_q.weight": _random(rng, HIDDEN, HIDDEN),
        "proj_out.weight": _random(rng, patch * patch * latent, HIDDEN),
        "proj_out.bias": _random(rng, patch * patch * latent),
    }
    out = Path(pretrained)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(transformer, indent=2, sort_keys=True) + "\n")
    _build_vae(Path(ae_path), latent, rng)
    _build_text_encoder(Path(cache_dir), text_encoder_name, rng)


def _build_vae(folder: Path, latent: int, rng: np.random.Generator) -> None:
    """A ``WFVAEModel`` config and its ``merged.ckpt`` (``torch.save`` of ``{"state_dict": ...}``,
    what ``init_from_ckpt`` reads)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "_class_name": "WFVAEModel",
        "_diffusers_version": "0.30.0",
        "base_channels": 8,
        "connect_res_layer_num": 1,
        "decoder_energy_flow_hidden_size": 8,
        "decoder_num_resblocks": 1,
        "dropout": 0.0,
        "encoder_energy_flow_hidden_size": 8,
        "encoder_num_resblocks": 1,
        "latent_dim": latent,
        "norm_type": "layernorm",
        "scale": [0.18215] * latent,
        "shift": [0.0] * latent,
        "t_interpolation": "trilinear",
        "use_attention": True,
    }
    state = {
        "encoder.conv_in.weight": torch.from_numpy(_random(rng, 8, 24, 3, 3)),
        "decoder.conv_out.weight": torch.from_numpy(_random(rng, 12, 8, 3, 3)),
    }
    torch.save({"state_dict": state}, folder / VAE_CHECKPOINT)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _build_text_encoder(cache_dir: Path, name: str, rng: np.random.Generator) -> None:
    """An mT5 encoder config and weights: in ``name`` when it is a path, else in the hub cache as
    ``snapshot_download`` leaves it (files in ``blobs/`` by hash, linked from the snapshot)."""
    import torch

    config = {
        "_name_or_path": name,
        "architectures": ["MT5ForConditionalGeneration"],
        "d_ff": 2 * HIDDEN,
        "d_kv": HIDDEN // 2,
        "d_model": HIDDEN,
        "decoder_start_token_id": 0,
        "dense_act_fn": "gelu_new",
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": True,
        "model_type": "mt5",
        "num_decoder_layers": 1,
        "num_heads": 2,
        "num_layers": 1,
        "pad_token_id": 0,
        "relative_attention_num_buckets": 32,
        "tie_word_embeddings": False,
        "tokenizer_class": "T5Tokenizer",
        "vocab_size": 64,
    }
    files: dict[str, bytes] = {
        "config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        "special_tokens_map.json": json.dumps({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}).encode(),
        "tokenizer_config.json": json.dumps({"model_max_length": 512, "tokenizer_class": "T5Tokenizer"}).encode(),
    }
    weights = _mt5_state_dict(config, int(rng.integers(2**31)))
    if Path(name).is_absolute() or name.startswith("."):
        folder = Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        torch.save(weights, folder / "pytorch_model.bin")
        return
    repo = cache_dir / ("models--" + name.replace("/", "--"))
    snapshot = repo / "snapshots" / SNAPSHOT
    for sub in (repo / "blobs", repo / "refs", snapshot):
        sub.mkdir(parents=True, exist_ok=True)
    tmp = repo / "blobs" / "pytorch_model.bin.tmp"
    torch.save(weights, tmp)
    files["pytorch_model.bin"] = tmp.read_bytes()
    tmp.unlink()
    for fname, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / fname
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs" / "main").write_text(SNAPSHOT)


def _mt5_state_dict(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """The state dict of a randomly initialised ``MT5ForConditionalGeneration`` of ``config``
    (every key the real checkpoint has, at the stand-in's size)."""
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(seed)
    model = MT5ForConditionalGeneration(MT5Config(**{k: v for k, v in config.items() if not k.startswith("_")}))
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def build_assets(train: Mapping[str, Any], *, git: bool = False) -> dict[str, Any]:
    """The stand-in checkout and weights at the paths of a ``train:`` section's ``opensora:``
    settings (schema defaults for keys it leaves out).

    Returns:
        the ``opensora:`` settings, with ``commit`` set to the stand-in's HEAD when ``git``.
    """
    from tav_pipeline.train.config import TrainConfig

    osp = TrainConfig.from_dict(dict(train)).opensora
    build_checkout(osp.repo, git=git)
    build_weights(
        osp.pretrained,
        osp.ae_path,
        osp.cache_dir,
        osp.text_encoder_name_1,
        ae=osp.ae,
        sparse1d=osp.sparse1d,
        sparse_n=osp.sparse_n,
        interpolation_scale=(osp.interpolation_scale_t, osp.interpolation_scale_h, osp.interpolation_scale_w),
    )
    settings = dict(train.get("opensora") or {})
    if git:
        settings["commit"] = head_commit(osp.repo)
    return settings
