"""Random-initialised weights in Open-Sora-Plan v1.3.1's real formats, built with its own classes.

Three folders, as a real run reads them (``train.opensora.pretrained``, ``ae_path``, ``cache_dir``):

* ``OpenSoraT2V_v1_3-2B/122/``: ``OpenSoraT2V_v1_3_2B_122`` (32 layers, 24 heads of 96, mT5
  captions) saved with ``save_pretrained``; its ``config.json`` carries the paper's sparse
  attention and interpolation (``sparse1d`` true, ``sparse_n`` 4, ``interpolation_scale_*`` 1.0),
  which the trainer takes from this file, not from its flags.
* ``WFVAEModel_D8_4x8x8/``: a ``WFVAEModel`` of 8 latent channels, ``config.json`` +
  ``merged.ckpt`` (``{"state_dict": ...}``, what ``init_from_ckpt`` reads).
* ``models--google--mt5-xxl/`` in a hub cache: an ``MT5EncoderModel`` of google/mt5-xxl's
  configuration (24 layers, d_model 4096, vocabulary 250112) and a sentencepiece tokenizer. The
  real vocabulary cannot be had here, so the tokenizer is a small one trained locally in mT5's id
  layout (pad 0, eos 1, unk 2); its ids index the real-size embedding.

``tiny=True`` builds the same classes at a few layers and channels, for CPU checks.
Run from a checkout of Open-Sora-Plan on ``sys.path`` (the classes are imported from it).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL = "OpenSoraT2V_v1_3-2B/122"
AE = "WFVAEModel_D8_4x8x8"
TEXT_ENCODER = "google/mt5-xxl"
SNAPSHOT = "0" * 40
PAPER_CONFIG = {"sparse1d": True, "sparse_n": 4, "interpolation_scale_t": 1.0, "interpolation_scale_h": 1.0, "interpolation_scale_w": 1.0}
MT5_XXL = {
    "d_ff": 10240, "d_kv": 64, "d_model": 4096, "num_heads": 64, "num_layers": 24, "num_decoder_layers": 24,
    "vocab_size": 250112, "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": True,
    "relative_attention_num_buckets": 32, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-06,
    "tie_word_embeddings": False, "decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0,
    "tokenizer_class": "T5Tokenizer", "model_type": "mt5",
}
"""google/mt5-xxl's config.json (the values that size and run the encoder)."""


def build_transformer(folder: Path, *, num_frames: int = 33, height: int = 256, width: int = 256, tiny: bool = False, device: str = "cpu") -> dict[str, Any]:
    """``OpenSoraT2V_v1_3`` at the trainer's latent shape for ``num_frames x height x width``."""
    import torch
    from opensora.models.diffusion.opensora_v1_3.modeling_opensora import OpenSoraT2V_v1_3, OpenSoraT2V_v1_3_2B_122

    common = {
        "in_channels": 8, "out_channels": 8, "sample_size_h": height // 8, "sample_size_w": width // 8,
        "sample_size_t": (num_frames - 1) // 4 + 1, "attention_bias": True, "double_self_attention": False,
        "norm_elementwise_affine": False, "norm_eps": 1e-6, "only_cross_attention": False, "upcast_attention": False,
        **PAPER_CONFIG,
    }
    with torch.device(device):
        if tiny:  # blocks 2..29 are the sparse ones: 4 layers keep two of them
            model = OpenSoraT2V_v1_3(
                num_layers=4, attention_head_dim=8, num_attention_heads=2, patch_size_t=1, patch_size=2,
                caption_channels=32, cross_attention_dim=16, activation_fn="gelu-approximate", **common
            )
        else:
            model = OpenSoraT2V_v1_3_2B_122(**common)
    model.save_pretrained(str(folder), safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    assert all(config[k] == v for k, v in PAPER_CONFIG.items()), config
    n = sum(p.numel() for p in model.parameters())
    del model
    return {"parameters": n, "config": config}


def build_vae(folder: Path, *, tiny: bool = False, device: str = "cpu") -> dict[str, Any]:
    """``WFVAEModel`` with 8 latent channels (``WFVAEModel_D8_4x8x8``)."""
    import torch
    from opensora.models.causalvideovae.model.vae.modeling_wfvae import WFVAEModel

    size = {"base_channels": 16, "encoder_energy_flow_hidden_size": 8, "decoder_energy_flow_hidden_size": 16} if tiny else {
        "base_channels": 128, "encoder_energy_flow_hidden_size": 64, "decoder_energy_flow_hidden_size": 128}
    with torch.device(device):
        vae = WFVAEModel(latent_dim=8, norm_type="layernorm", t_interpolation="trilinear", use_attention=True, **size)
    folder.mkdir(parents=True, exist_ok=True)
    vae.save_config(str(folder))
    torch.save({"state_dict": {k: v.cpu() for k, v in vae.state_dict().items()}}, folder / "merged.ckpt")
    n = sum(p.numel() for p in vae.parameters())
    del vae
    return {"parameters": n}


def build_text_encoder(cache_dir: Path, spiece: Path, *, tiny: bool = False, device: str = "cpu") -> dict[str, Any]:
    """mT5-XXL's encoder and a tokenizer in the hub cache as ``models--google--mt5-xxl``."""
    import torch
    from transformers import MT5Config, MT5EncoderModel

    values = dict(MT5_XXL)
    if tiny:
        values.update(d_ff=64, d_kv=8, d_model=32, num_heads=4, num_layers=2, num_decoder_layers=2)
    repo = cache_dir / ("models--" + TEXT_ENCODER.replace("/", "--"))
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    with torch.device(device):
        encoder = MT5EncoderModel(MT5Config(**values)).to(torch.bfloat16)
    encoder.config._name_or_path = TEXT_ENCODER
    encoder.save_pretrained(str(snapshot), safe_serialization=True)
    shutil.copy(spiece, snapshot / "spiece.model")
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    (snapshot / "special_tokens_map.json").write_text(json.dumps(special))
    (snapshot / "tokenizer_config.json").write_text(
        json.dumps({**special, "extra_ids": 0, "additional_special_tokens": None, "sp_model_kwargs": {},
                    "name_or_path": TEXT_ENCODER, "model_max_length": 1000000000000000019884624838656,
                    "tokenizer_class": "T5Tokenizer"})
    )
    n = sum(p.numel() for p in encoder.parameters())
    del encoder
    return {"parameters": n}


def build_all(root: Path, spiece: Path, *, tiny: bool = False, device: str = "cpu") -> dict[str, Any]:
    """All three under ``root``; returns their paths and parameter counts."""
    import torch

    pretrained, ae_path, cache = root / MODEL, root / AE, root / "cache_dir"
    info = {
        "pretrained": str(pretrained), "ae_path": str(ae_path), "cache_dir": str(cache),
        "transformer": build_transformer(pretrained, tiny=tiny, device=device),
        "vae": build_vae(ae_path, tiny=tiny, device=device),
        "text_encoder": build_text_encoder(cache, spiece, tiny=tiny, device=device),
    }
    if device != "cpu":
        torch.cuda.empty_cache()
    return info


def check_loads(info: dict[str, Any]) -> dict[str, Any]:
    """Load the three as v1.3.1's trainer does (its wrappers and ``AutoTokenizer``)."""
    import argparse

    import torch
    from opensora.models.causalvideovae import ae_wrapper
    from opensora.models.diffusion import Diffusion_models_class
    from opensora.models.text_encoder import get_text_warpper
    from transformers import AutoTokenizer

    args = argparse.Namespace(text_encoder_name_1=TEXT_ENCODER, cache_dir=info["cache_dir"])
    vae = ae_wrapper[AE](info["ae_path"], cache_dir=info["cache_dir"])
    enc = get_text_warpper(TEXT_ENCODER)(args, torch_dtype=torch.bfloat16, low_cpu_mem_usage=False)
    tok = AutoTokenizer.from_pretrained(TEXT_ENCODER, cache_dir=info["cache_dir"])
    model = Diffusion_models_class[MODEL].from_pretrained(info["pretrained"])
    ids = tok("a dog runs in the snow", max_length=16, padding="max_length", truncation=True, return_tensors="pt")
    emb = enc(ids["input_ids"], ids["attention_mask"])
    return {
        "tokenizer": type(tok).__name__, "token_ids": ids["input_ids"][0].tolist(), "embedding": list(emb.shape),
        "vae_scale": vae.scale.flatten().tolist(), "sparse1d": model.config.sparse1d, "sparse_n": model.config.sparse_n,
    }


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--spiece", type=Path, required=True)
    parser.add_argument("--osp", type=Path, required=True, help="Open-Sora-Plan checkout")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--check", action="store_true")
    a = parser.parse_args()
    sys.path.insert(0, str(a.osp.resolve()))
    logging.basicConfig(level=logging.INFO)
    built = build_all(a.root, a.spiece, tiny=a.tiny, device=a.device)
    if a.check:
        built["loaded"] = check_loads(built)
    log.info("%s", json.dumps(built, default=str))
