"""A tiny randomly initialised EasyAnimate V5.1 pipeline, for the demo and the tests.

:func:`build_tiny_easyanimate` writes a folder laid out like
``alibaba-pai/EasyAnimateV5.1-7b-zh-diffusers`` (``model_index.json``, ``transformer/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) with the classes that checkpoint and
``EasyAnimatePipeline``'s type hints name: ``EasyAnimateTransformer3DModel``,
``AutoencoderKLMagvit``, ``Qwen2VLForConditionalGeneration``, ``Qwen2Tokenizer`` and
``FlowMatchEulerDiscreteScheduler``. ``DiffusionPipeline.from_pretrained(folder)`` loads it with
no network.

Sizes: transformer 2 MMDiT layers x 2 heads x 16 dims (EasyAnimate's 3D RoPE splits a head 1:3:3
over t, h, w; 16 is the smallest head it splits into even parts), VAE with 8-channel blocks and 4
latent channels, Qwen2-VL text model 2 layers of width 32 (plus a 1-layer vision tower the pipeline
never calls); about 1 MB on disk. The VAE keeps MagVIT's 8x spatial and 4x temporal compression, so
9 frames at 32x32 make 3x4x4 latents. The tokenizer is a byte-level BPE (every byte is a token, so
any text tokenises) whose merges spell out the words of :data:`tav_pipeline.tiny_cogvideox.WORDS`,
with Qwen's ``<|im_start|>`` / ``<|im_end|>`` chat markers and a chat template of that form (the
pipeline wraps each prompt in a user message). Nothing is downloaded or trained.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tav_pipeline.tiny_cogvideox import WORDS

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Qwen2's padding / end-of-text token and its chat markers, appended after the BPE vocabulary."""

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Messages as ``<|im_start|>role\\ntext<|im_end|>``, the layout of Qwen2's chat format."""


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE, in byte order (bytes that are printable
    Latin-1 characters stand for themselves; the others map to code points from 256 up, so the
    space byte is ``Ġ``)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def tiny_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The tokenizer's vocabulary (token -> id) and merges.

    Ids 0-255 are the bytes; then, for every word of the list, the merges that build ``Ġword``
    (the word after a space) one character at a time from the left. The special tokens come after
    (see :func:`build_tiny_easyanimate`).
    """
    alphabet = byte_alphabet()
    vocab = {piece: i for i, piece in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    space = alphabet[ord(" ")]
    for word in WORDS:
        left = space
        for ch in word:
            piece = left + ch
            if piece not in vocab:
                vocab[piece] = len(vocab)
                merges.append((left, ch))
            left = piece
    return vocab, merges


def build_tiny_easyanimate(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny EasyAnimate pipeline folder.

    The weights are drawn under ``torch.manual_seed(seed)`` inside a forked RNG (the global RNG is
    left alone; the same seed gives the same files).

    Arguments:
        out_dir: folder to create.
        seed: seed of the random initialisation.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    import importlib

    import torch

    # both libraries' classes are only partly annotated: use them as Any
    diffusers: Any = importlib.import_module("diffusers")
    transformers: Any = importlib.import_module("transformers")

    vocab, merges = tiny_bpe()
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=256,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.add_special_tokens({"pad_token": SPECIAL_TOKENS[0]})
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    width = 32
    config = transformers.Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "embed_dim": 16,
            "hidden_size": width,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        # the vision tokens are never used (the pipeline sends text only); keep their ids in range
        image_token_id=ids["<|endoftext|>"],
        video_token_id=ids["<|endoftext|>"],
        vision_start_token_id=ids["<|im_start|>"],
        vision_end_token_id=ids["<|im_end|>"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = transformers.Qwen2VLForConditionalGeneration(config).eval()
        transformer = diffusers.EasyAnimateTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            out_channels=4,
            patch_size=2,
            sample_width=4,
            sample_height=4,
            time_embed_dim=16,
            text_embed_dim=width,
            num_layers=2,
            mmdit_layers=2,
        )
        vae = diffusers.AutoencoderKLMagvit(
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=4,
        )
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    pipe = diffusers.EasyAnimatePipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, scheduler=scheduler
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(out))
    sizes = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder))
    }
    log.info("tiny EasyAnimate (seed %d, %d tokens, parameters %s) written to %s", seed, len(tokenizer), sizes, out)
    return out
