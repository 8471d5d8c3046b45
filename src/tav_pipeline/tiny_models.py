"""Tiny randomly initialised models of the real classes, for tests and the offline demo.

:func:`build_tiny_blip` writes a folder laid out exactly like a Salesforce
``blip-image-captioning-*`` checkpoint (``config.json``, ``model.safetensors``,
``generation_config.json``, ``processor_config.json``, tokenizer files), so
``BlipForConditionalGeneration.from_pretrained(folder)`` and ``BlipProcessor.from_pretrained(folder)``
load it with no network. Nothing is downloaded: the tokenizer is a WordPiece BERT tokenizer built from
the small word list in this module.

The captions it writes are random word salad, but they are deterministic (same seed, same files, same
captions) and they depend on the image, which is what the caption stage's tests need.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens, in BERT's order (``[PAD]`` is id 0, as BLIP's ``pad_token_id`` expects)."""

DECODER_TOKENS = ("[DEC]", "[ENC]")
"""BLIP's two extra tokens, appended after the word list as in the real checkpoints: ``[DEC]`` is the
text decoder's beginning-of-sequence token, ``[ENC]`` the text encoder's."""

TINY_WORDS = """
a an the of in on at with and to near by from over under behind next front top side
man woman men women person people boy girl child children baby family group crowd couple
dog dogs cat cats bird birds horse cow sheep fish mouse puppy animal animals
car cars truck bus bike bicycle motorcycle boat ship train plane airplane road street
house building tower bridge city town room kitchen table chair couch bed desk window door wall
floor roof shelf box bag bottle cup bowl plate spoon fork knife glass food cake pizza bread
fruit apple banana orange water river lake sea ocean beach sand rock rocks mountain hill
field grass tree trees forest flower flowers garden park sky cloud clouds sun sunset night
snow rain ice fire smoke light lights sign screen phone computer camera book books paper
picture photo image painting drawing cartoon character doll toy ball game player team
hat shirt dress suit tie jacket glasses hair face hand hands eyes head
red blue green yellow black white brown gray pink purple orange dark bright small large
big little long short tall old young new two three several many some other another
sitting standing walking running flying riding driving holding playing talking looking
eating drinking cooking swimming jumping dancing singing smiling wearing watching reading
writing working sleeping lying laying carrying putting taking making getting being
is are was there it this that his her their its up down out into through around
close view top bottom middle background foreground blurry empty full covered filled
stage news tv show video music band concert microphone guitar piano
police shop store market restaurant bar office school church hospital street
""".split()  # noqa: SIM905 (a word list reads better as text)
"""Plain English words of the kind BLIP captions use (a few hundred); duplicates are dropped."""


def tiny_vocab(words: Sequence[str] = TINY_WORDS) -> list[str]:
    """The tiny tokenizer's vocabulary in id order: BERT specials, the word list, ``[DEC]``, ``[ENC]``.

    Arguments:
        words: the plain words (default: :data:`TINY_WORDS`); duplicates are dropped.

    Returns:
        token strings; token ``i`` has id ``i``.
    """
    out: list[str] = []
    seen: set[str] = set(SPECIAL_TOKENS) | set(DECODER_TOKENS)
    for word in words:
        if word not in seen:
            seen.add(word)
            out.append(word)
    # Punctuation the decoder may need to detokenise (BERT splits it off as separate tokens).
    for mark in (",", ".", ";", "'", "-"):
        if mark not in seen:
            seen.add(mark)
            out.append(mark)
    return [*SPECIAL_TOKENS, *out, *DECODER_TOKENS]


def tiny_blip_parts(seed: int = 0, words: Sequence[str] = TINY_WORDS, hidden: int = 32, layers: int = 2,
                    init: float = 0.2) -> tuple[Any, Any, list[str]]:
    """A tiny random BLIP captioning model, its processor and its vocabulary (nothing written).

    Vision tower: 64x64 images, 16x16 patches; text decoder of the same width. See
    :func:`build_tiny_blip` for the initialisation.

    Returns:
        ``(BlipForConditionalGeneration, BlipProcessor, vocabulary)``.
    """
    import torch
    import transformers

    tf: Any = transformers  # untyped for mypy

    vocab = tiny_vocab(words)
    ids = {token: i for i, token in enumerate(vocab)}
    tokenizer = tf.BertTokenizer(
        vocab=ids,
        do_lower_case=True,
        bos_token="[DEC]",
        additional_special_tokens=["[ENC]"],
        model_max_length=64,
    )
    image_size = 64
    config = tf.BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "bos_token_id": ids["[DEC]"],
            "eos_token_id": ids["[SEP]"],
            "sep_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
            "initializer_range": init,
        },
        vision_config={
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 16,
            "projection_dim": hidden,
            "initializer_range": init,
        },
        projection_dim=hidden,
        image_text_hidden_size=hidden,
        initializer_range=init,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.BlipForConditionalGeneration(config).eval()
    image_processor = tf.BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = tf.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return model, processor, vocab


def build_tiny_blip(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random BLIP captioning checkpoint (model + processor) to ``out_dir``.

    Vision tower: 64x64 images, 16x16 patches, hidden size 32, 2 layers. Text decoder: hidden size 32,
    2 layers, vocabulary :func:`tiny_vocab` (about 300 tokens). The weights are drawn with
    ``initializer_range=0.2`` (BLIP's default of 1e-10 for the vision tower would make every image give
    the same caption) under ``torch.manual_seed(seed)`` inside a forked RNG, so the global RNG is left
    alone and the same seed always gives the same weights. About 0.35 MB on disk.

    Arguments:
        out_dir: folder to create (or overwrite files in).
        seed: seed of the random initialisation.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, vocab = tiny_blip_parts(seed)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    log.info("tiny BLIP (seed %d, %d tokens) written to %s", seed, len(vocab), out)
    return out
