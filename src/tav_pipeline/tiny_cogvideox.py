"""A tiny randomly initialised CogVideoX pipeline, for the demo and the tests.

:func:`build_tiny_cogvideox` writes a folder laid out exactly like ``THUDM/CogVideoX-2b``
(``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``) with the same diffusers and transformers classes
(``CogVideoXTransformer3DModel``, ``AutoencoderKLCogVideoX``, ``T5EncoderModel``,
``T5Tokenizer``, ``CogVideoXDDIMScheduler``), so ``CogVideoXPipeline.from_pretrained(folder)``
and every code path of the diffusers backend load it with no network.

Sizes: transformer 2 layers x 2 heads x 8 dims (~15k parameters), VAE with 8-channel blocks and
4 latent channels (~65k), T5 encoder 2 layers of width 32 (~23k); about 0.5 MB on disk. The VAE
keeps CogVideoX's 8x spatial and 4x temporal compression, so 9 frames at 32x32 make 3x4x4
latents. The scheduler is CogVideoX-2b's (v-prediction, zero terminal SNR, ``snr_shift_scale``
3). The tokenizer is a T5 unigram model built from the word list below plus single characters, so
any English prompt tokenises; nothing is downloaded or trained.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WORDS = """
a an the of in on at with and to near by from over under behind into through then while
previous next scene first second shot cut
man woman men women person people boy girl child children baby family group crowd
dog dogs cat cats bird birds horse fish animal animals
car cars truck bus bike boat train plane road street city town house building room kitchen
table chair bed window door wall floor food cake pizza fruit water river lake sea ocean beach
sand rock mountain hill field grass tree trees forest flower flowers garden park sky cloud
clouds sun sunset night snow rain fire light screen phone computer book picture video game
player team ball stage music band guitar
red blue green yellow black white brown gray pink purple orange dark bright small large big
little two three several many some other
sitting standing walking running flying riding driving holding playing talking looking
eating cooking swimming jumping dancing singing smiling wearing watching reading working
is are was there it this that his her their its up down out around
close view top bottom middle background pattern colorful moving
""".split()
"""Words that get their own token (``▁word``); anything else falls back to single characters."""

MAX_TOKENS = 32
"""Prompt length of the tiny model (its ``max_text_seq_length``)."""


def tiny_vocab(extra_words: Sequence[str] = ()) -> list[tuple[str, float]]:
    """The unigram vocabulary in id order: T5's ``<pad>``, ``</s>``, ``<unk>`` (ids 0, 1, 2), the
    word-start marker, whole words (:data:`WORDS`, then ``extra_words``), then single characters
    (lower scores, used only as fallback)."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    seen = {piece for piece, _ in vocab}
    for word in (*WORDS, *extra_words):
        piece = "\u2581" + word
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, -5.0))
    for ch in string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,;:'\"-!?()":
        if ch not in seen:
            seen.add(ch)
            vocab.append((ch, -10.0))
    return vocab


def tiny_cogvideox_parts(seed: int = 0, extra_words: Sequence[str] = (), head_dim: int = 8) -> Any:
    """The tiny CogVideoX pipeline in memory (see :func:`build_tiny_cogvideox`; nothing written).

    Arguments:
        seed: seed of the random initialisation.
        extra_words: words added to the tokenizer's whole-word pieces.
        head_dim: the transformer's attention head width (2 heads).

    Returns:
        a ``CogVideoXPipeline``.
    """
    import importlib

    import torch

    # both libraries' classes are only partly annotated: use them as Any
    diffusers: Any = importlib.import_module("diffusers")
    transformers: Any = importlib.import_module("transformers")
    T5Config, T5EncoderModel, T5Tokenizer = transformers.T5Config, transformers.T5EncoderModel, transformers.T5Tokenizer
    AutoencoderKLCogVideoX, CogVideoXDDIMScheduler = diffusers.AutoencoderKLCogVideoX, diffusers.CogVideoXDDIMScheduler
    CogVideoXPipeline, CogVideoXTransformer3DModel = diffusers.CogVideoXPipeline, diffusers.CogVideoXTransformer3DModel

    vocab = tiny_vocab(extra_words)
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=MAX_TOKENS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=len(vocab),
                d_model=32,
                d_kv=8,
                d_ff=64,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                relative_attention_max_distance=16,
                feed_forward_proj="gated-gelu",
                dropout_rate=0.0,
            )
        ).eval()
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=head_dim,
            in_channels=4,
            out_channels=4,
            time_embed_dim=16,
            text_embed_dim=32,
            num_layers=2,
            sample_width=4,
            sample_height=4,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=MAX_TOKENS,
        )
        vae = AutoencoderKLCogVideoX(
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=4,
            sample_height=32,
            sample_width=32,
            temporal_compression_ratio=4,
        )
    # CogVideoX-2b's scheduler_config.json
    scheduler = CogVideoXDDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type="v_prediction",
        clip_sample_range=1.0,
        sample_max_value=1.0,
        timestep_spacing="trailing",
        rescale_betas_zero_snr=True,
        snr_shift_scale=3.0,
    )
    return CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def build_tiny_cogvideox(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny CogVideoX pipeline folder.

    The weights are drawn under ``torch.manual_seed(seed)`` inside a forked RNG (the global RNG is
    left alone; the same seed gives the same files).

    Arguments:
        out_dir: folder to create.
        seed: seed of the random initialisation.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    out = Path(out_dir)
    pipe = tiny_cogvideox_parts(seed)
    transformer, vae, text_encoder, vocab = pipe.transformer, pipe.vae, pipe.text_encoder, tiny_vocab()
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(out))
    sizes = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder))
    }
    log.info("tiny CogVideoX (seed %d, %d tokens, parameters %s) written to %s", seed, len(vocab), sizes, out)
    return out
