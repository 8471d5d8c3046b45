"""The BLIP captioner (paper section 3): its settings, fetching a checkpoint, loading it and
captioning images.

The paper captions "each of the two scenes separately with BLIP" and merges the two captions into one
prompt (:mod:`tav_pipeline.dataset` does the merging). It does not say which BLIP checkpoint it used
or how it decoded; each is a named setting here (:class:`CaptionConfig`). The model is a
``transformers`` ``BlipForConditionalGeneration`` with its ``BlipProcessor``, loaded
(:func:`load_captioner`) from a local folder that the workflow rule ``fetch_blip`` fills
(:func:`fetch_model`); nothing is downloaded while captioning. Decoding is pinned (beam search, no
sampling), so captions are a function of the pixels and the checkpoint (:func:`caption_images`).

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from tav_pipeline.config import check_keys
from tav_pipeline.devices import resolve_device
from tav_pipeline.errors import BadVideoError, ConfigError, MissingAssetError
from tav_pipeline.files import write_text_atomic
from tav_pipeline.locations import is_local_folder

log = logging.getLogger(__name__)

FETCH_RULE = "fetch_blip"
"""The workflow rule that downloads a BLIP checkpoint into a local folder (:func:`fetch_model`)."""

FETCH_RECORD = "tav_fetch.json"
"""File :func:`fetch_model` writes into the model folder: hub id, requested revision, resolved commit."""

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"




@dataclass(frozen=True)
class CaptionConfig:
    """The BLIP captioner and its decoding (``captions:`` in config.yaml).

    **Which BLIP.** The paper says only "BLIP". The default is
    ``Salesforce/blip-image-captioning-large`` (ViT-L, fine-tuned on COCO captions): it is the BLIP
    captioning checkpoint the Hugging Face BLIP documentation and most "caption with BLIP" code use, and
    the paper's printed captions (appendix B; ``paper_prompt_pairs.csv``) have its COCO style: a
    lower-case noun phrase plus a participle, 7-12 words ("a man and a woman sitting at a table on the
    beach", "a woman in a bikini standing on the beach"). The base model writes the same style but
    shorter; the evidence does not rule it out, so ``model`` is a setting and each captions line records
    the checkpoint. Note that the paper's introduction also says an "LLM" wrote the per-scene
    descriptions; the method section says BLIP, which this follows.

    **Decoding (pinned).** ``num_beams=3, max_new_tokens=30, min_new_tokens=5, repetition_penalty=1.0,
    do_sample=False``: the decoding of BLIP's own captioning code (its ``generate`` defaults: beam search
    with 3 beams, at most 30 and at least 5 tokens, no repetition penalty, no sampling), which is what
    "caption with BLIP" meant when the paper was written. Beam search without sampling makes a caption a
    function of the image and the weights alone: rerunning gives the same text, and a resumed run
    matches an uninterrupted one. A 30-token cap leaves room for BLIP-large's longest COCO-style
    captions; the 5-token floor stops one-word captions. Every value is written with each caption.
    """

    model: str = "resources/models/blip-image-captioning-large"
    """Local checkpoint folder (the workflow's default, filled by the rule ``fetch_blip``) or a hub id
    that is already in the local Hugging Face cache."""
    hub_id: str = DEFAULT_MODEL
    """Hub repository ``model`` was (or is to be) downloaded from; recorded as the caption model and named
    in the error when the folder is missing."""
    revision: str | None = "main"
    """Hub revision; pin a commit hash for a reproducible run. Ignored for a local folder."""
    batch_size: int = 8
    device: str = "auto"
    """``auto`` (``cuda`` when available, else ``cpu``), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    dtype: str = "float32"
    """``float32``, ``float16`` or ``bfloat16``. float32 by default: half precision can change which beam
    wins and so the caption."""
    prompt: str = ""
    """Text prefix for conditional captioning (BLIP's ``"a picture of"`` style); empty for unconditional
    captioning, as the Hugging Face BLIP card shows. The prefix is removed from the returned captions."""
    num_beams: int = 3
    max_new_tokens: int = 30
    min_new_tokens: int = 5
    repetition_penalty: float = 1.0
    do_sample: bool = False
    seed: int = 0
    """Seed set before each batch. It matters only with ``do_sample=True``."""
    local_files_only: bool | None = None
    """Never touch the network when loading. ``None``: True when ``model`` is a folder (or a path),
    False for a hub id (then a missing cache entry is fetched only where the network allows)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("captions.batch_size", f"must be >= 1, got {self.batch_size}")
        if self.dtype not in _DTYPES:
            raise ConfigError("captions.dtype", f"must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if self.num_beams < 1:
            raise ConfigError("captions.num_beams", f"must be >= 1, got {self.num_beams}")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0 or self.min_new_tokens > self.max_new_tokens:
            raise ConfigError(
                "captions.min_new_tokens",
                f"need 0 <= min_new_tokens ({self.min_new_tokens}) <= max_new_tokens ({self.max_new_tokens})",
            )
        if not self.model:
            raise ConfigError("captions.model", "is empty")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaptionConfig:
        """Build from the ``captions:`` config mapping.

        Arguments:
            d: mapping with a subset of this class's fields.

        Returns:
            the config. Raises :class:`ConfigError` for unknown keys or bad values.
        """
        check_keys("captions", d, cls)
        return cls(**dict(d))

    @property
    def is_local(self) -> bool:
        """True when ``model`` names a folder rather than an ``owner/name`` hub id (see
        :func:`tav_pipeline.locations.is_local_folder`)."""
        return is_local_folder(self.model)

    def decoding(self) -> dict[str, Any]:
        """The generation arguments, as passed to ``generate``.

        Returns:
            ``num_beams``, ``max_new_tokens``, ``min_new_tokens``, ``repetition_penalty``, ``do_sample``.
        """
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "do_sample": self.do_sample,
        }

    def settings_key(self) -> str:
        """Short hash of everything besides the weights that shapes a caption (prompt, decoding, dtype).
        A resumed run reuses a finished caption only when this matches.

        Returns:
            12 hex digits.
        """
        blob = json.dumps({"prompt": self.prompt, "dtype": self.dtype, "seed": self.seed, **self.decoding()}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


_DTYPES = {"float32", "float16", "bfloat16"}


@dataclass
class Captioner:
    """A loaded BLIP captioner."""

    model: Any
    """``BlipForConditionalGeneration`` in eval mode on ``device``."""
    processor: Any
    """``BlipProcessor``."""
    device: str
    dtype: Any
    """``torch.dtype`` of the weights."""
    name: str
    """What the captions file records as ``model`` (see :func:`model_label`)."""


def model_label(cfg: CaptionConfig) -> str:
    """The caption model as recorded in ``captions.jsonl`` and ``tav.json``.

    For a folder written by :func:`fetch_model`: ``hub_id@commit`` from its ``tav_fetch.json``. For any
    other folder: the folder path. For a hub id: ``hub_id@revision``.

    Arguments:
        cfg: the caption settings.

    Returns:
        a label such as ``Salesforce/blip-image-captioning-large@<commit>``.
    """
    if cfg.is_local:
        record = Path(cfg.model).expanduser() / FETCH_RECORD
        if record.is_file():
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
                rev = data.get("commit") or data.get("revision") or "unknown"
                return f"{data['repo_id']}@{rev}"
            except (ValueError, KeyError) as exc:
                log.warning("%s is unreadable (%s); recording the folder path as the model", record, exc)
        return str(cfg.model)
    return f"{cfg.model}@{cfg.revision or 'main'}"


def fetch_model(repo_id: str, revision: str | None, out_dir: str | Path) -> Path:
    """Download a BLIP checkpoint into a plain folder (the body of the workflow rule ``fetch_blip``).

    Only what ``from_pretrained`` needs is fetched: JSON configs, tokenizer text files and
    ``*.safetensors`` weights (PyTorch ``*.bin`` only when the repository has no safetensors). A
    ``tav_fetch.json`` records the repository, the requested revision and the commit it resolved to.

    Arguments:
        repo_id: hub repository, e.g. ``Salesforce/blip-image-captioning-large``.
        revision: branch, tag or commit; ``None`` for the default branch.
        out_dir: destination folder.

    Returns:
        ``out_dir``.

    Raises:
        MissingAssetError: the download failed (no network, unknown repository or revision); it names
            the rule ``fetch_blip``.
    """
    from huggingface_hub import HfApi, snapshot_download

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    commit: str | None = None
    try:
        info = HfApi().model_info(repo_id, revision=revision)
        commit = info.sha
        names = {s.rfilename for s in (info.siblings or [])}
        has_safetensors = any(n.endswith(".safetensors") for n in names)
        patterns = ["*.json", "*.txt", "*.model"] + (["*.safetensors"] if has_safetensors or not names else ["*.bin"])
        snapshot_download(repo_id=repo_id, revision=commit or revision, local_dir=str(out), allow_patterns=patterns)
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, not found)
        raise MissingAssetError(
            out, FETCH_RULE, f"could not download {repo_id}@{revision or 'main'}: {type(exc).__name__}: {exc}"
        ) from exc
    record = {"repo_id": repo_id, "revision": revision, "commit": commit}
    write_text_atomic(out / FETCH_RECORD, json.dumps(record, indent=2) + "\n")
    log.info("fetched %s@%s (commit %s) into %s", repo_id, revision, commit, out)
    return out


def load_captioner(cfg: CaptionConfig) -> Captioner:
    """Load the BLIP processor and model named by ``cfg``, offline unless allowed otherwise.

    Arguments:
        cfg: caption settings (``model``, ``revision``, ``device``, ``dtype``, ``local_files_only``).

    Returns:
        the loaded :class:`Captioner`, in eval mode.

    Raises:
        MissingAssetError: the folder does not exist or is not a loadable checkpoint, or the hub id is
            not in the local cache and cannot be downloaded. It names the model and the rule
            ``fetch_blip``.
    """
    local = cfg.is_local
    offline = cfg.local_files_only if cfg.local_files_only is not None else local
    hint = (
        f"run the rule '{FETCH_RULE}' (it downloads {cfg.hub_id} with huggingface_hub.snapshot_download "
        f"where the network allows) or point captions.model at a BLIP checkpoint folder"
    )
    source: str = str(Path(cfg.model).expanduser()) if local else cfg.model
    if local and not (Path(source) / "config.json").is_file():
        raise MissingAssetError(cfg.model, FETCH_RULE, hint)
    import torch
    import transformers

    tf: Any = transformers  # untyped for mypy: the loaded objects are used duck-typed
    kwargs: dict[str, Any] = {"local_files_only": offline}
    if not local and cfg.revision:
        kwargs["revision"] = cfg.revision
    dtype = getattr(torch, cfg.dtype)
    device = resolve_device(cfg.device, key="captions.device")
    try:
        processor = tf.BlipProcessor.from_pretrained(source, **kwargs)
        model = tf.BlipForConditionalGeneration.from_pretrained(source, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        # transformers reports a missing cache entry / unreachable hub / missing file as OSError.
        raise MissingAssetError(cfg.model, FETCH_RULE, f"{hint}. Loading failed: {exc}") from exc
    # Keep only the token ids of the checkpoint's generation config: decoding comes from cfg alone.
    text_config = model.config.text_config
    model.generation_config = tf.GenerationConfig(
        bos_token_id=text_config.bos_token_id,
        eos_token_id=text_config.sep_token_id,
        pad_token_id=text_config.pad_token_id,
    )
    model.to(device)
    model.eval()
    name = model_label(cfg)
    log.info("captioner %s on %s (%s)", name, device, cfg.dtype)
    return Captioner(model=model, processor=processor, device=device, dtype=dtype, name=name)


def _to_rgb(image: Any) -> Any:
    """An RGB image the BLIP processor accepts: arrays pass through, files are read with OpenCV."""
    if isinstance(image, (str, Path)):
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BadVideoError(image, "unreadable", "not an image file")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB array, got {image.shape} {image.dtype}")
        return image
    return image  # PIL image


def normalise_caption(text: str) -> str:
    """Collapse runs of whitespace to one space and trim the ends.

    Arguments:
        text: decoded caption.

    Returns:
        the cleaned caption.
    """
    return " ".join(text.split())


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def caption_images(
    images: Sequence[Any],
    captioner: Captioner,
    cfg: CaptionConfig,
    progress: bool = True,
) -> list[str]:
    """Caption images with BLIP, ``cfg.batch_size`` at a time.

    Each batch runs under ``torch.inference_mode`` after ``torch.manual_seed(cfg.seed)``, with the
    pinned decoding of :class:`CaptionConfig` passed explicitly, together with ``length_penalty=1.0``
    and ``no_repeat_ngram_size=0`` (and :func:`load_captioner` resets the checkpoint's generation
    config to its token ids), so nothing shipped with a checkpoint changes the decoding. The prompt tokens are cut off the
    output by position, then whitespace is normalised. With beam search and no sampling a caption does
    not depend on the other images in its batch (up to floating-point differences between batched and
    single matrix products, which can in rare cases flip a beam on GPU).

    Arguments:
        images: RGB ``H x W x 3`` uint8 arrays, PIL images, or image file paths.
        captioner: from :func:`load_captioner`.
        cfg: the caption settings.
        progress: show a tqdm bar (on stderr) over images.

    Returns:
        one caption per image, in input order. An empty caption is returned as ``""`` with a warning.
    """
    import torch

    model, processor = captioner.model, captioner.processor
    # Every knob that could change a beam-search result is passed explicitly.
    decoding = {**cfg.decoding(), "length_penalty": 1.0, "no_repeat_ngram_size": 0, "num_return_sequences": 1}
    out: list[str] = []
    bar = tqdm(total=len(images), desc="caption", unit="img", disable=not progress)
    try:
        for batch in batches(list(images), cfg.batch_size):
            rgb = [_to_rgb(im) for im in batch]
            if cfg.prompt:
                inputs = processor(images=rgb, text=[cfg.prompt] * len(rgb), return_tensors="pt")
            else:
                inputs = processor(images=rgb, return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(captioner.device, captioner.dtype)
            kwargs: dict[str, Any] = {"pixel_values": pixel_values, **decoding}
            if cfg.prompt:
                kwargs["input_ids"] = inputs["input_ids"].to(captioner.device)
                kwargs["attention_mask"] = inputs["attention_mask"].to(captioner.device)
                # BLIP's generate drops the prompt's trailing [SEP]; the output repeats the rest.
                n_prompt = int(inputs["input_ids"].shape[1]) - 1
            else:
                n_prompt = 1  # the [DEC] start token
            torch.manual_seed(cfg.seed)
            with torch.inference_mode():
                generated = model.generate(**kwargs)
            texts = processor.batch_decode(generated[:, n_prompt:], skip_special_tokens=True)
            for text in texts:
                caption = normalise_caption(text)
                if not caption:
                    log.warning("BLIP returned an empty caption")
                out.append(caption)
            bar.update(len(batch))
    finally:
        bar.close()
    return out
