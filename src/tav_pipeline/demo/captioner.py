"""The demo's captioner: a tiny BLIP (the real ``transformers`` classes) trained on keyframes of the
miniature world with their true captions, so the pipeline's own captioning step writes right captions.

Training images are world frames drawn at the demo's source size (320x240) at random points of random
scenes, with a little pixel noise, and go through the same ``BlipProcessor`` the caption step uses.
The held-out check is closer to the pipeline: frames of other scenes (another seed) are encoded with
libx264, decoded again, and captioned with :func:`tav_pipeline.captions.caption_images` and the demo's
caption settings; accuracy is the share of exact caption matches.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tav_pipeline.demo.world import WORDS, Scene, random_scene, render_frame, write_video
from tav_pipeline.tiny_models import tiny_blip_parts

log = logging.getLogger(__name__)

REPORT_FILE = "world_accuracy.json"
"""Written beside the weights: the held-out accuracy and the training settings."""


@dataclass(frozen=True)
class CaptionerTraining:
    """How the demo captioner is trained (the rule ``build_demo_blip``)."""

    seed: int = 0
    images: int = 1200
    steps: int = 400
    batch_size: int = 48
    learning_rate: float = 2e-3
    hidden: int = 48
    held_out: int = 96
    width: int = 320
    height: int = 240


def _draw(n: int, rng: np.random.Generator, width: int, height: int) -> tuple[list[np.ndarray], list[Scene]]:
    frames, scenes = [], []
    for _ in range(n):
        scene = random_scene(rng)
        frames.append(render_frame(scene, float(rng.random()), width, height))
        scenes.append(scene)
    return frames, scenes


def _token_batch(captions: list[str], processor: Any) -> tuple[Any, Any]:
    """``[DEC] words [SEP]`` ids and the labels (padding ignored), as BLIP's decoder is prompted."""
    import torch

    tok = processor.tokenizer
    rows = [[tok.bos_token_id, *tok.convert_tokens_to_ids(tok.tokenize(c)), tok.sep_token_id] for c in captions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    labels = ids.masked_fill(ids == tok.pad_token_id, -100)
    return ids, labels


def held_out_accuracy(model_dir: str | Path, cfg: CaptionerTraining, caption_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Caption held-out world frames that went through libx264 with the pipeline's caption code.

    Arguments:
        model_dir: the trained BLIP folder.
        cfg: training settings (the held-out draw uses ``seed + 1000``).
        caption_settings: ``captions:`` keys beyond ``model`` (the demo's: greedy, 3-12 new tokens).

    Returns:
        ``{"accuracy", "n", "errors": [{"true", "caption"}...]}``.
    """
    import av

    from tav_pipeline.captioner import CaptionConfig, caption_images, load_captioner

    rng = np.random.default_rng([cfg.seed, 1000])
    frames, scenes = _draw(cfg.held_out, rng, cfg.width, cfg.height)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(frames, Path(tmp) / "held_out.mp4", 24.0, crf=23)
        with av.open(str(path)) as container:
            decoded = [f.to_image() for f in container.decode(video=0)]  # type: ignore[no-untyped-call]
    settings = {"device": "cpu", "num_beams": 1, "max_new_tokens": 12, "min_new_tokens": 3, **(caption_settings or {})}
    cfg_c = CaptionConfig.from_dict({**settings, "model": str(model_dir)})
    captions = caption_images(decoded, load_captioner(cfg_c), cfg_c, progress=False)
    truth = [s.caption for s in scenes]
    right = [c == t for c, t in zip(captions, truth)]
    return {
        "accuracy": float(np.mean(right)),
        "n": len(truth),
        "errors": [{"true": t, "caption": c} for c, t, ok in zip(captions, truth, right) if not ok][:20],
    }


def train_captioner(out_dir: str | Path, cfg: CaptionerTraining = CaptionerTraining(),
                    caption_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the tiny BLIP on world frames, save it like a BLIP checkpoint and report its accuracy.

    Arguments:
        out_dir: folder for ``config.json``, ``model.safetensors``, processor and tokenizer files,
            and :data:`REPORT_FILE`.
        cfg: training settings.
        caption_settings: the ``captions:`` settings the held-out check decodes with.

    Returns:
        the report written to :data:`REPORT_FILE`.
    """
    import torch
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, vocab = tiny_blip_parts(cfg.seed, words=WORDS, hidden=cfg.hidden, init=0.02)
    rng = np.random.default_rng([cfg.seed, 7])
    frames, scenes = _draw(cfg.images, rng, cfg.width, cfg.height)
    noisy = [np.clip(f.astype(np.int16) + rng.normal(0, 3, f.shape).round().astype(np.int16), 0, 255).astype(np.uint8) for f in frames]
    pixels = processor.image_processor(images=noisy, return_tensors="pt")["pixel_values"]
    ids, labels = _token_batch([s.caption for s in scenes], processor)
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=cfg.steps, pct_start=0.1)
        bar = tqdm(range(cfg.steps), desc="captioner", unit="step")
        for step in bar:
            idx = torch.randint(0, cfg.images, (cfg.batch_size,), generator=g)
            loss = model(pixel_values=pixels[idx], input_ids=ids[idx], labels=labels[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == cfg.steps - 1:
                bar.set_postfix(loss=f"{loss.item():.3f}")
                log.info("captioner step %d: loss %.4f", step, loss.item())
        model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    report = {"training": asdict(cfg), **held_out_accuracy(out, cfg, caption_settings)}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    log.info("demo captioner: held-out caption accuracy %.3f on %d frames", report["accuracy"], report["n"])
    return report
