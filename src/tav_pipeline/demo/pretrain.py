"""The demo's base model: the tiny CogVideoX (:mod:`tav_pipeline.tiny_cogvideox`, the real diffusers
classes) pretrained on single-scene clips of the miniature world only, as the paper's baselines were
trained on mostly single-scene footage, so it renders one scene whatever the prompt.

Two stages, each from scratch and seeded:

1. the VAE learns to reconstruct world clips (``num_frames`` at ``size`` x ``size``; MSE plus a small
   KL term); its PSNR on held-out clips is reported, and its ``scaling_factor`` is set to one over
   the standard deviation of the latents, as for the real CogVideoX;
2. the transformer learns the text-to-video diffusion of those clips with the pipeline's own
   scheduler (v-prediction), conditioned on the frozen, randomly initialised T5 encoder's embedding
   of each clip's true caption (in the world's plain and sentence forms), with 10% empty captions.

The result is a folder in ``THUDM/CogVideoX-2b``'s layout that the diffusers backend post-trains and
generates from, with ``pretrain.json`` (settings, losses, PSNR) beside it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tav_pipeline.demo.world import WORDS, Scene, random_scene, render_frame
from tav_pipeline.tiny_cogvideox import MAX_TOKENS, tiny_cogvideox_parts

log = logging.getLogger(__name__)

REPORT_FILE = "pretrain.json"

PROMPT_WORDS = ("Previous", "Next", "scene")
"""Words of the TAV prompt template (``Previous scene: X; Next scene: Y``) given whole tokens, so a
two-scene prompt fits the tiny model's 32 tokens. Pretraining never shows them (its captions are
single scenes); post-training on TAV clips is where the model meets them."""


@dataclass(frozen=True)
class PretrainConfig:
    """How the demo's base model is pretrained (the rule ``build_tiny_cogvideox``)."""

    seed: int = 0
    clips: int = 480
    num_frames: int = 9
    size: int = 32
    vae_steps: int = 600
    vae_lr: float = 2e-3
    transformer_steps: int = 1500
    transformer_lr: float = 1e-3
    batch_size: int = 16
    text_drop_prob: float = 0.1
    head_dim: int = 16
    held_out: int = 32
    device: str = "cpu"
    """Where it trains (``cpu``, ``cuda``, ``auto``); the draws are made on the CPU either way, so
    only the arithmetic's rounding differs between devices."""


def world_clip(scene: Scene, start: float, cfg: PretrainConfig) -> np.ndarray:
    """One single-scene clip, ``[3, F, H, W]`` in [-1, 1]: ``num_frames`` frames from ``start`` of
    the scene's drift (a tenth of the scene per frame at most)."""
    ts = [min(start + 0.04 * i, 1.0) for i in range(cfg.num_frames)]
    frames = np.stack([render_frame(scene, t, cfg.size, cfg.size) for t in ts]).astype(np.float32)
    return frames.transpose(3, 0, 1, 2) / 127.5 - 1.0


def _draw(n: int, rng: np.random.Generator, cfg: PretrainConfig) -> tuple[np.ndarray, list[Scene]]:
    scenes = [random_scene(rng) for _ in range(n)]
    clips = np.stack([world_clip(s, float(rng.uniform(0, 0.6)), cfg) for s in scenes])
    return clips, scenes


def psnr(a: Any, b: Any) -> float:
    """PSNR in dB of two tensors in [-1, 1]."""
    mse = float(((a.clamp(-1, 1) - b) ** 2).mean()) / 4.0  # on the [0, 1] scale
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _prompt(scene: Scene, rng: np.random.Generator) -> str:
    """The caption as BLIP writes it, or as a group A sentence (capitalised, with a full stop)."""
    return scene.caption if rng.random() < 0.5 else scene.caption[:1].upper() + scene.caption[1:] + "."


def pretrain_cogvideox(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig()) -> dict[str, Any]:
    """Pretrain the tiny CogVideoX on single-scene world clips and save the pipeline folder.

    Arguments:
        out_dir: folder to write (``model_index.json``, ``transformer/``, ``vae/``, ...).
        cfg: settings.

    Returns:
        the report written to :data:`REPORT_FILE`.
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from tav_pipeline.devices import resolve_device

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    device = torch.device(resolve_device(cfg.device, key="demo.pretrain.device"))
    rng = np.random.default_rng([cfg.seed, 3])
    pipe = tiny_cogvideox_parts(cfg.seed, extra_words=(*WORDS, *PROMPT_WORDS), head_dim=cfg.head_dim)
    pipe.to(device)
    vae, transformer, scheduler = pipe.vae, pipe.transformer, pipe.scheduler
    clips_np, scenes = _draw(cfg.clips, rng, cfg)
    held_np, _ = _draw(cfg.held_out, np.random.default_rng([cfg.seed, 4]), cfg)
    clips, held = torch.from_numpy(clips_np).to(device), torch.from_numpy(held_np).to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    report: dict[str, Any] = {"settings": asdict(cfg), "device": str(device)}
    started = time.time()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # 1. the VAE
        vae.train()
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
        bar = tqdm(range(cfg.vae_steps), desc="VAE", unit="step")
        for step in bar:
            x = clips[torch.randint(0, cfg.clips, (cfg.batch_size,), generator=g).to(device)]
            post = vae.encode(x).latent_dist
            recon = vae.decode(post.sample(generator=None)).sample
            loss = F.mse_loss(recon, x) + 1e-6 * post.kl().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0 or step == cfg.vae_steps - 1:
                bar.set_postfix(loss=f"{loss.item():.4f}")
                log.info("VAE step %d: loss %.5f", step, loss.item())
        vae.eval()
        with torch.no_grad():
            recon = vae.decode(vae.encode(held).latent_dist.mode()).sample
            report["vae_psnr_db"] = psnr(recon, held)
            latents = torch.cat([vae.encode(clips[i : i + 32]).latent_dist.mode() for i in range(0, cfg.clips, 32)])
        scaling = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scaling)
        log.info("VAE: held-out PSNR %.2f dB, scaling factor %.4f", report["vae_psnr_db"], scaling)

        # 2. the transformer, on the frozen VAE's latents and the frozen text encoder's embeddings
        latents = (latents * scaling).permute(0, 2, 1, 3, 4).contiguous()  # [N, F, C, H, W]
        prompts = sorted({p for s in scenes for p in (s.caption, s.caption[:1].upper() + s.caption[1:] + ".")} | {""})
        with torch.no_grad():
            embeds, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=MAX_TOKENS, device=device)
        which = {p: i for i, p in enumerate(prompts)}
        clip_prompt = torch.tensor([which[_prompt(s, rng)] for s in scenes], device=device)
        transformer.train()
        opt = torch.optim.AdamW(transformer.parameters(), lr=cfg.transformer_lr, weight_decay=0.0)
        alphas = scheduler.alphas_cumprod.float().to(device)
        losses = []
        bar = tqdm(range(cfg.transformer_steps), desc="transformer", unit="step")
        for step in bar:
            idx = torch.randint(0, cfg.clips, (cfg.batch_size,), generator=g).to(device)
            x0 = latents[idx]
            cond = clip_prompt[idx].clone()
            cond[(torch.rand(cfg.batch_size, generator=g) < cfg.text_drop_prob).to(device)] = which[""]
            t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=g).to(device)
            noise = torch.randn(x0.shape, generator=g).to(device)
            a = alphas[t].sqrt().view(-1, 1, 1, 1, 1)
            s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1, 1)
            noisy, target = a * x0 + s * noise, a * noise - s * x0  # v-prediction
            pred = transformer(hidden_states=noisy, encoder_hidden_states=embeds[cond], timestep=t, return_dict=False)[0]
            loss = F.mse_loss(pred, target)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if step % 100 == 0 or step == cfg.transformer_steps - 1:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
                log.info("transformer step %d: loss %.5f", step, float(np.mean(losses[-100:])))
        transformer.eval()
        report["transformer_loss_last100"] = float(np.mean(losses[-100:]))
    report["seconds"] = round(time.time() - started, 1)
    pipe.to("cpu")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(out))
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report
