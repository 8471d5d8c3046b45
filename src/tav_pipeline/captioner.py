"""One keyframe per scene and one BLIP caption per keyframe (paper section 3).

The paper captions "each of the two scenes separately with BLIP" and merges the two captions into one
prompt (:mod:`tav_pipeline.dataset` does the merging). It does not say which frames BLIP saw, which
BLIP checkpoint it used, or how it decoded; each is a named setting here:

* **Keyframes** (:class:`KeyframeConfig`): scene 1 is the clip's frames ``[0, cut)``, scene 2 is
  ``[cut, end)``. One frame per scene, ``position`` of the way into it, kept at least ``margin``
  seconds away from the cut (where encoders smear the two scenes together and detectors may be a frame
  off) and from the clip's two ends. :func:`extract_keyframes` decodes the clip once and writes two PNGs
  and a small JSON record.
* **Captioner** (:class:`CaptionConfig`, :func:`load_captioner`, :func:`caption_images`): a
  ``transformers`` ``BlipForConditionalGeneration`` with its ``BlipProcessor``, loaded from a local
  folder that the workflow rule ``fetch_blip`` fills (:func:`fetch_model`); nothing is downloaded while
  captioning. Decoding is pinned (beam search, no sampling), so captions are a function of the pixels
  and the checkpoint.
* **Captions file** (:func:`caption_clips`): ``captions.jsonl``, one line per scene, sorted by video
  then scene, written through a ``.partial`` file so an interrupted run resumes where it stopped.

torch and transformers are imported inside the functions that need them, so keyframe extraction runs
in the light ``video`` environment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from tav_pipeline.config import check_keys
from tav_pipeline.errors import BadVideoError, ConfigError, MissingAssetError, TavError
from tav_pipeline.records import read_json_object
from tav_pipeline.video import frames_at, seconds

log = logging.getLogger(__name__)

FETCH_RULE = "fetch_blip"
"""The workflow rule that downloads a BLIP checkpoint into a local folder (:func:`fetch_model`)."""

FETCH_RECORD = "tav_fetch.json"
"""File :func:`fetch_model` writes into the model folder: hub id, requested revision, resolved commit."""

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"



# --------------------------------------------------------------------------------------------------
# Keyframes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyframeConfig:
    """Where in each scene the captioned frame is taken (``keyframes:`` in config.yaml)."""

    position: float = 0.5
    """Fraction of the way into the scene (0 = its first frame, 1 = its last). 0.5 takes the middle,
    the frame most likely to show the scene's subject and least likely to be a fade."""
    margin: float = 0.5
    """Seconds the keyframe is kept away from the cut and from the clip's start and end. When a scene
    is shorter than ``2 * margin`` no frame satisfies this and the scene's middle frame is used (the
    JSON record says ``"fallback": true``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.position <= 1.0:
            raise ConfigError("keyframes.position", f"must be within [0, 1], got {self.position}")
        if not self.margin >= 0.0:
            raise ConfigError("keyframes.margin", f"must be >= 0 seconds, got {self.margin}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyframeConfig:
        """Build from the ``keyframes:`` config mapping.

        Arguments:
            d: mapping with a subset of this class's fields.

        Returns:
            the config. Raises :class:`ConfigError` for unknown keys or values out of range.
        """
        check_keys("keyframes", d, cls)
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class Keyframe:
    """The frame chosen for one scene."""

    scene: int
    """1 (before the cut) or 2 (after it)."""
    frame: int
    """0-based decode index in the clip."""
    time: float
    """``frame / fps`` in seconds from the clip's start."""
    scene_start: int
    """First frame of the scene (inclusive)."""
    scene_end: int
    """Frame after the scene's last frame (exclusive)."""
    fallback: bool
    """True when the scene is too short for the margin and its middle frame was taken instead."""


def choose_keyframes(frames: int, fps: float, cut_frame: int, cfg: KeyframeConfig = KeyframeConfig()) -> tuple[Keyframe, Keyframe]:
    """Pick one frame in each scene of a two-scene clip.

    Frame ``i`` is shown at ``i / fps``. A scene ``[a, b)`` (frames) spans ``[a/fps, b/fps)``; its
    keyframe ``i`` must satisfy ``i/fps - a/fps >= margin`` and ``b/fps - i/fps >= margin``, i.e. it
    lies at least ``margin`` after the scene's start and before its end, where the ends are the clip's
    start, the cut and the clip's end. The target is ``a + position * (b - a)`` (rounded down), clamped
    into the allowed frames; when none are allowed the scene's middle frame ``a + (b - a - 1) // 2``
    is used and a warning is logged.

    Arguments:
        frames: number of frames in the clip.
        fps: the clip's frame rate.
        cut_frame: first frame of scene 2 (``cut_frame_in_clip`` of the clip sidecar).
        cfg: position and margin.

    Returns:
        the keyframes of scene 1 and scene 2.

    Raises:
        BadVideoError: ``scene_too_short`` when a scene has no frames (the cut is at the first frame
            or at/after the last one), ``unreadable`` when ``frames`` or ``fps`` is not positive.
    """
    if frames <= 0 or not fps > 0:
        raise BadVideoError("<clip>", "unreadable", f"frames={frames}, fps={fps}")
    bounds = ((1, 0, int(cut_frame)), (2, int(cut_frame), int(frames)))
    margin_frames = max(0, math.ceil(cfg.margin * fps - 1e-9))
    chosen: list[Keyframe] = []
    for scene, a, b in bounds:
        if b <= a or a < 0 or b > frames:
            raise BadVideoError(
                "<clip>", "scene_too_short", f"scene {scene} spans frames [{a}, {b}) of a {frames}-frame clip"
            )
        lo, hi = a + margin_frames, b - margin_frames
        if lo > hi or lo > b - 1:
            index = a + (b - a - 1) // 2
            fallback = True
            log.warning(
                "scene %d has %d frames (%.3f s), less than 2 x margin (%.3f s): using its middle frame %d",
                scene, b - a, (b - a) / fps, cfg.margin, index,
            )
        else:
            target = a + math.floor(cfg.position * (b - a))
            index = min(max(target, lo), min(hi, b - 1))
            fallback = False
        chosen.append(Keyframe(scene, index, seconds(index / fps), a, b, fallback))
    return chosen[0], chosen[1]


def extract_keyframes(
    clip_mp4: str | Path,
    sidecar: str | Path | Mapping[str, Any],
    cfg: KeyframeConfig,
    out_png_scene1: str | Path,
    out_png_scene2: str | Path,
    out_json: str | Path,
) -> dict[str, Any]:
    """Choose, decode and save one keyframe per scene of a clip.

    Arguments:
        clip_mp4: the two-scene clip.
        sidecar: its ``clips/{video}.json`` record (path or already-loaded mapping); ``frames``, ``fps``
            and ``cut_frame_in_clip`` are used.
        cfg: keyframe position and margin.
        out_png_scene1: PNG of scene 1's keyframe (full size, lossless).
        out_png_scene2: PNG of scene 2's keyframe.
        out_json: record of the choice, see Returns.

    Returns:
        the record written to ``out_json``: ``video``, ``status`` (``ok``), ``clip``, ``fps``, ``frames``,
        ``cut_frame_in_clip``, ``position``, ``margin``, ``scene1`` and ``scene2`` (each ``frame``,
        ``time``, ``scene_start``, ``scene_end``, ``fallback``, ``png``).

    Raises:
        BadVideoError: ``scene_too_short`` (see :func:`choose_keyframes`), the decoding reasons of
            :func:`tav_pipeline.video.frames_at`, or ``encode_failed`` when a PNG cannot be written.
        TavError: the sidecar lacks a needed key or its status is not ``ok``.
    """
    meta = read_json_object(sidecar)
    missing = [k for k in ("frames", "fps", "cut_frame_in_clip") if k not in meta]
    if missing:
        raise TavError(f"{sidecar if not isinstance(sidecar, Mapping) else clip_mp4}: sidecar lacks {missing}")
    if meta.get("status", "ok") != "ok":
        raise TavError(f"{clip_mp4}: sidecar status is {meta.get('status')!r}, not 'ok'")
    try:
        k1, k2 = choose_keyframes(int(meta["frames"]), float(meta["fps"]), int(meta["cut_frame_in_clip"]), cfg)
    except BadVideoError as exc:
        raise BadVideoError(clip_mp4, exc.reason, exc.detail) from None
    images = frames_at(clip_mp4, [k1.frame, k2.frame], pixel_format="bgr24")
    record: dict[str, Any] = {
        "video": meta.get("video", Path(clip_mp4).stem),
        "status": "ok",
        "clip": str(clip_mp4),
        "fps": float(meta["fps"]),
        "frames": int(meta["frames"]),
        "cut_frame_in_clip": int(meta["cut_frame_in_clip"]),
        "position": cfg.position,
        "margin": cfg.margin,
    }
    for key, image, out in (("scene1", images[0], out_png_scene1), ("scene2", images[1], out_png_scene2)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), image):
            raise BadVideoError(clip_mp4, "encode_failed", f"cannot write {out}")
        kf = k1 if key == "scene1" else k2
        record[key] = {**{k: v for k, v in asdict(kf).items() if k != "scene"}, "png": str(out)}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out_json, json.dumps(record, indent=2) + "\n")
    log.info("%s: keyframes %d (%.3f s) and %d (%.3f s)", record["video"], k1.frame, k1.time, k2.frame, k2.time)
    return record


# --------------------------------------------------------------------------------------------------
# Captioner
# --------------------------------------------------------------------------------------------------


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

    model: str = DEFAULT_MODEL
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
        """True when ``model`` names a folder: it exists, or it looks like a path rather than an
        ``owner/name`` hub id (absolute, starts with ``.`` or ``~``, or has more than one ``/``)."""
        return _looks_like_path(self.model)

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


def _looks_like_path(model: str) -> bool:
    if Path(model).expanduser().exists():
        return True
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or "\\" in model
        or model.endswith("/")
    )


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


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu``.

    Arguments:
        device: ``auto`` or a torch device string.

    Returns:
        a torch device string.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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
    _write_text_atomic(out / FETCH_RECORD, json.dumps(record, indent=2) + "\n")
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
    device = resolve_device(cfg.device)
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


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
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
        for batch in _batches(list(images), cfg.batch_size):
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


# --------------------------------------------------------------------------------------------------
# captions.jsonl
# --------------------------------------------------------------------------------------------------


def _sha1_file(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_text_atomic(path: str | Path, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


@dataclass(frozen=True)
class _Job:
    video: str
    scene: int
    keyframe: str
    sha1: str = field(compare=False)


def _jobs(records: Iterable[Mapping[str, Any]]) -> list[_Job]:
    jobs: list[_Job] = []
    seen: set[str] = set()
    for rec in records:
        video = str(rec["video"])
        if video in seen:
            raise TavError(f"video {video!r} appears twice in the caption records")
        seen.add(video)
        for scene in (1, 2):
            png = rec.get(f"scene{scene}_png")
            if png is None:
                raise TavError(f"caption record of {video!r} lacks scene{scene}_png")
            if not Path(png).is_file():
                raise BadVideoError(png, "missing_file", f"keyframe of scene {scene} of {video}")
            jobs.append(_Job(video, scene, str(png), _sha1_file(png)))
    jobs.sort(key=lambda j: (j.video, j.scene))
    return jobs


def records_from_keyframes(
    keyframes: Iterable[str | Path | Mapping[str, Any]],
    validations: Iterable[str | Path | Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Turn keyframe records (:func:`extract_keyframes`) into :func:`caption_clips` records.

    Arguments:
        keyframes: ``keyframes/{video}.json`` paths or loaded records; records whose ``status`` is
            not ``ok`` (keyframe extraction was rejected) are skipped.
        validations: when given, ``validation/{video}.json`` records; only clips whose record says
            ``"passed": true`` are kept (captioning a clip that cannot enter the dataset is wasted GPU
            time).

    Returns:
        ``{"video", "clip", "scene1_png", "scene2_png"}`` per kept clip, sorted by video.
    """
    passed: set[str] | None = None
    if validations is not None:
        passed = set()
        for obj in validations:
            rec = read_json_object(obj)
            if rec.get("passed") is True:
                passed.add(str(rec["video"]))
    out = []
    for obj in keyframes:
        rec = read_json_object(obj)
        video = str(rec["video"])
        if passed is not None and video not in passed:
            continue
        if rec.get("status", "ok") != "ok":
            log.info("%s: no keyframes (%s), not captioned", video, rec.get("reason", rec.get("status")))
            continue
        out.append({"video": video, "clip": rec.get("clip"), "scene1_png": rec["scene1"]["png"], "scene2_png": rec["scene2"]["png"]})
    skipped = "" if passed is None else f" ({len(passed)} validated)"
    log.info("%d clips to caption%s", len(out), skipped)
    return sorted(out, key=lambda r: r["video"])


def partial_path(out_jsonl: str | Path) -> Path:
    """Where :func:`caption_clips` keeps finished lines while it runs.

    Arguments:
        out_jsonl: the final captions file.

    Returns:
        ``out_jsonl`` + ``.partial``.
    """
    p = Path(out_jsonl)
    return p.with_name(p.name + ".partial")


def _load_partial(path: Path, model: str, settings: str) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return done
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            key = (str(row["video"]), int(row["scene"]))
            ok = row.get("model") == model and row.get("settings") == settings and isinstance(row.get("caption"), str)
        except (ValueError, KeyError, TypeError):
            bad += 1  # a line cut short by the interruption
            continue
        if ok:
            done[key] = row
    if bad:
        log.warning("%s: ignored %d unreadable line(s)", path, bad)
    return done


def caption_clips(
    records: Sequence[Mapping[str, Any]],
    cfg: CaptionConfig,
    out_jsonl: str | Path,
    captioner: Captioner | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Caption both keyframes of every clip and write ``captions.jsonl``.

    Each line is ``{"video", "scene": 1|2, "keyframe", "caption", "model", "keyframe_sha1",
    "settings"}``: ``model`` is :func:`model_label`, ``keyframe_sha1`` the PNG's SHA-1 and
    ``settings`` :meth:`CaptionConfig.settings_key`. Lines are sorted by video, then scene.

    Resuming: finished lines are appended to ``out_jsonl.partial`` after every batch. A later call
    reuses a partial line when its video, scene, keyframe path, PNG hash, model and settings all match
    the current request, and captions only the rest; the model is not even loaded when nothing is left.
    The final file is written atomically and the partial file removed.

    Arguments:
        records: one mapping per clip with ``video``, ``scene1_png`` and ``scene2_png`` (other keys are
            ignored).
        cfg: caption settings.
        out_jsonl: the captions file to write.
        captioner: an already loaded captioner; loaded from ``cfg`` when needed and ``None``.
        progress: show a tqdm bar over keyframes.

    Returns:
        the written rows, in file order.

    Raises:
        TavError: a video appears twice or a record lacks a keyframe path.
        BadVideoError: ``missing_file`` for a keyframe PNG that does not exist.
        MissingAssetError: see :func:`load_captioner`.
    """
    jobs = _jobs(records)
    label = captioner.name if captioner is not None else model_label(cfg)
    settings = cfg.settings_key()
    partial = partial_path(out_jsonl)
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = _load_partial(partial, label, settings)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    pending: list[_Job] = []
    for job in jobs:
        prev = done.get((job.video, job.scene))
        if prev is not None and prev.get("keyframe") == job.keyframe and prev.get("keyframe_sha1") == job.sha1:
            rows[(job.video, job.scene)] = prev
        else:
            pending.append(job)
    if rows:
        log.info("resuming: %d of %d captions reused from %s", len(rows), len(jobs), partial)
    # Rewrite the partial file with only the reusable lines, so stale ones never come back.
    _write_text_atomic(partial, "".join(json.dumps(r) + "\n" for r in rows.values()))
    if pending:
        if captioner is None:
            captioner = load_captioner(cfg)
            label = captioner.name
        bar = tqdm(total=len(pending), desc="caption scenes", unit="img", disable=not progress)
        try:
            with open(partial, "a", encoding="utf-8") as handle:
                for batch in _batches(pending, cfg.batch_size):
                    captions = caption_images([j.keyframe for j in batch], captioner, cfg, progress=False)
                    for job, caption in zip(batch, captions):
                        row = {
                            "video": job.video,
                            "scene": job.scene,
                            "keyframe": job.keyframe,
                            "caption": caption,
                            "model": label,
                            "keyframe_sha1": job.sha1,
                            "settings": settings,
                        }
                        rows[(job.video, job.scene)] = row
                        handle.write(json.dumps(row) + "\n")
                    handle.flush()
                    bar.update(len(batch))
        finally:
            bar.close()
    ordered = [rows[(j.video, j.scene)] for j in jobs]
    Path(out_jsonl).parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(out_jsonl, "".join(json.dumps(r) + "\n" for r in ordered))
    partial.unlink(missing_ok=True)
    log.info("wrote %d captions for %d clips to %s", len(ordered), len(jobs) // 2, out_jsonl)
    return ordered


def read_captions(path: str | Path) -> list[dict[str, Any]]:
    """Read ``captions.jsonl``.

    Arguments:
        path: the captions file.

    Returns:
        its rows, in file order.
    """
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise TavError(f"{path}:{number}: not JSON ({exc})") from exc
    return rows
