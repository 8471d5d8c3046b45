"""Model families of the diffusers backend: how a pipeline maps prompts and videos to what its
denoiser sees, and how the denoiser is called.

A family is found from the pipeline folder's ``model_index.json`` (``_class_name``). CogVideoX
(2B, 5B and 1.5) is supported: its scheduler (``CogVideoXDDIMScheduler``) is already a
v-prediction DDPM schedule with zero terminal SNR, so the paper's recipe applies unchanged. Other
pipelines are refused with a :class:`~tav_pipeline.errors.ConfigError` that says why: flow-matching
ones because the recipe does not transfer (see :mod:`tav_pipeline.backends.diffusers.loss`), the rest because
no adapter is written yet.

Every encoder call goes through the pipeline's own methods (``encode_prompt``,
``_prepare_rotary_positional_embeddings``), so training sees exactly what generation feeds the
model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from tav_pipeline.backends.diffusers.loss import FLOW_MATCHING_HINT
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.locations import is_local_folder

log = logging.getLogger(__name__)

FLOW_MATCHING_PIPELINES = {
    "LTXPipeline",
    "LTXConditionPipeline",
    "HunyuanVideoPipeline",
    "WanPipeline",
    "MochiPipeline",
    "SkyReelsV2Pipeline",
}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _diffusers() -> Any:
    """diffusers, typed as ``Any`` (its classes are only partly annotated)."""
    import importlib

    return importlib.import_module("diffusers")


def model_index(pretrained: str, revision: str = "main", rule: str = "fetch_diffusers_model") -> dict[str, Any]:
    """The pipeline's ``model_index.json``.

    Raises:
        MissingAssetError: a local folder without it (``rule`` provides the folder), or a hub id
            that cannot be fetched.
    """
    if is_local_folder(pretrained):
        path = Path(pretrained) / "model_index.json"
        if not path.is_file():
            raise MissingAssetError(path, rule, "a diffusers pipeline folder (save_pretrained layout) is expected")
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(pretrained, "model_index.json", revision=revision)).read_text())  # type: ignore[no-any-return]
    except Exception as exc:  # network, auth or a wrong id: all mean the model is not here
        raise MissingAssetError(pretrained, rule, f"could not fetch model_index.json from the hub: {exc}") from exc


@dataclass
class Encoders:
    """The frozen parts of a pipeline, loaded once (no transformer)."""

    pipeline: Any
    device: torch.device
    dtype: torch.dtype


class Family:
    """Interface of a model family (see :class:`CogVideoX`)."""

    pipeline_class: str = ""
    transformer_class: str = ""
    transformer_subfolder: str = "transformer"
    temporal_compression: int = 4
    vae_spatial: int = 8

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames the VAE makes of ``num_frames`` video frames (the first frame alone, then
        ``temporal_compression`` frames each)."""
        return (num_frames - 1) // self.temporal_compression + 1

    def load_transformer(self, pretrained: str, revision: str = "main") -> Any:
        return self.transformer_cls().from_pretrained(
            pretrained, subfolder=self.transformer_subfolder, revision=revision
        )

    def transformer_cls(self) -> Any:
        return getattr(_diffusers(), self.transformer_class)

    def load_scheduler(self, pretrained: str, revision: str = "main") -> Any:
        raise NotImplementedError

    def load_encoders(self, pretrained: str, revision: str, device: torch.device, dtype: torch.dtype) -> Encoders:
        raise NotImplementedError

    def encode_prompts(self, enc: Encoders, prompts: list[str], max_sequence_length: int) -> torch.Tensor:
        raise NotImplementedError

    def encode_video(self, enc: Encoders, video: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_latents(
        self, params: torch.Tensor, scaling: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def denoise(
        self,
        transformer: Any,
        config: Any,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        prompt_embeds: torch.Tensor,
        *,
        height: int,
        width: int,
    ) -> torch.Tensor:
        """The denoiser's prediction; ``config`` is the unwrapped model's config (a DeepSpeed
        engine's ``.config`` is its own)."""
        raise NotImplementedError

    def latent_scaling(self, enc_or_config: Any) -> float:
        raise NotImplementedError

    def check_shape(self, transformer_config: Any, num_frames: int, height: int, width: int) -> None:
        """Raise :class:`ConfigError` when the model cannot take ``num_frames x height x width``."""


class CogVideoX(Family):
    """CogVideoX 2B / 5B / 1.5 (``CogVideoXPipeline``).

    Latents are ``[batch, frames, channels, height, width]`` (frames before channels, as the
    pipeline keeps them), scaled by the VAE's ``scaling_factor``. Prompts are T5 embeddings padded
    to ``max_text_seq_length`` tokens, without an attention mask, as the pipeline encodes them.
    """

    pipeline_class = "CogVideoXPipeline"
    transformer_class = "CogVideoXTransformer3DModel"

    def load_scheduler(self, pretrained: str, revision: str = "main") -> Any:
        return _diffusers().CogVideoXDDIMScheduler.from_pretrained(pretrained, subfolder="scheduler", revision=revision)

    def load_encoders(self, pretrained: str, revision: str, device: torch.device, dtype: torch.dtype) -> Encoders:
        pipe = _diffusers().CogVideoXPipeline.from_pretrained(
            pretrained, transformer=None, revision=revision, dtype=dtype
        )
        pipe.text_encoder.to(device).eval().requires_grad_(False)
        pipe.vae.to(device).eval().requires_grad_(False)
        self.vae_spatial = int(pipe.vae_scale_factor_spatial)
        return Encoders(pipe, device, dtype)

    def encode_prompts(self, enc: Encoders, prompts: list[str], max_sequence_length: int) -> torch.Tensor:
        with torch.no_grad():
            embeds, _ = enc.pipeline.encode_prompt(
                prompt=prompts,
                do_classifier_free_guidance=False,
                num_videos_per_prompt=1,
                max_sequence_length=max_sequence_length,
                device=enc.device,
                dtype=enc.dtype,
            )
        return embeds  # type: ignore[no-any-return]

    def encode_video(self, enc: Encoders, video: torch.Tensor) -> torch.Tensor:
        """``video``: ``[batch, 3, frames, H, W]`` in [-1, 1]. Returns the VAE posterior's
        parameters (mean and log-variance stacked on channels), ``[batch, frames', 2C, h, w]``."""
        with torch.no_grad():
            dist = enc.pipeline.vae.encode(video.to(enc.device, enc.dtype)).latent_dist
        return dist.parameters.permute(0, 2, 1, 3, 4).contiguous()  # type: ignore[no-any-return]

    def sample_latents(
        self, params: torch.Tensor, scaling: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A draw from the posterior (as diffusers' ``DiagonalGaussianDistribution.sample``), times
        the VAE's scaling factor."""
        mean, logvar = torch.chunk(params.float(), 2, dim=2)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * eps) * scaling

    def latent_scaling(self, enc_or_config: Any) -> float:
        cfg = enc_or_config.pipeline.vae.config if isinstance(enc_or_config, Encoders) else enc_or_config
        return float(cfg["scaling_factor"] if isinstance(cfg, dict) else cfg.scaling_factor)

    def rotary(
        self, transformer_config: Any, height: int, width: int, latent_frames: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary embeddings CogVideoX 5B / 1.5 need, from the pipeline's own method."""
        if not transformer_config.use_rotary_positional_embeddings:
            return None
        pipeline_cls: Any = _diffusers().CogVideoXPipeline
        shim = SimpleNamespace(
            vae_scale_factor_spatial=self.vae_spatial, transformer=SimpleNamespace(config=transformer_config)
        )
        freqs: tuple[torch.Tensor, torch.Tensor] = pipeline_cls._prepare_rotary_positional_embeddings(
            shim, height, width, latent_frames, device
        )
        return freqs

    def denoise(
        self,
        transformer: Any,
        config: Any,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        prompt_embeds: torch.Tensor,
        *,
        height: int,
        width: int,
    ) -> torch.Tensor:
        rot = self.rotary(config, height, width, noisy.shape[1], noisy.device)
        out = transformer(
            hidden_states=noisy,
            encoder_hidden_states=prompt_embeds,
            timestep=timesteps,
            image_rotary_emb=rot,
            return_dict=False,
        )[0]
        return out  # type: ignore[no-any-return]

    def check_shape(self, transformer_config: Any, num_frames: int, height: int, width: int) -> None:
        latent_frames = self.latent_frames(num_frames)
        p_t = transformer_config.patch_size_t
        if p_t and latent_frames % p_t:
            raise ConfigError(
                "train.num_frames",
                f"{num_frames} frames make {latent_frames} latent frames, not a multiple of this CogVideoX's "
                f"temporal patch {p_t} (CogVideoX 1.5): use 4k+1 frames with k+1 divisible by {p_t}, e.g. 37",
            )
        if height % (self.vae_spatial * transformer_config.patch_size) or width % (
            self.vae_spatial * transformer_config.patch_size
        ):
            raise ConfigError(
                "train.height",
                f"{height}x{width} is not a multiple of {self.vae_spatial * transformer_config.patch_size}",
            )


FAMILIES: dict[str, type[Family]] = {"CogVideoXPipeline": CogVideoX}


def family_for(pretrained: str, revision: str = "main", prediction_type: str = "v_prediction") -> Family:
    """The family of a pipeline folder or hub id, after checking the recipe fits it.

    Raises:
        MissingAssetError: the pipeline is not there.
        ConfigError: a flow-matching pipeline, an unsupported one, or a scheduler whose prediction
            type is not ``prediction_type``.
    """
    index = model_index(pretrained, revision)
    name = str(index.get("_class_name", ""))
    scheduler = index.get("scheduler", [None, ""])
    scheduler_name = str(scheduler[1]) if isinstance(scheduler, (list, tuple)) and len(scheduler) > 1 else ""
    if name in FLOW_MATCHING_PIPELINES or "FlowMatch" in scheduler_name:
        raise ConfigError(
            "train.diffusers.pretrained", f"{pretrained} is a {name} with {scheduler_name}: {FLOW_MATCHING_HINT}"
        )
    if name not in FAMILIES:
        raise ConfigError(
            "train.diffusers.pretrained",
            f"{pretrained} is a {name or 'pipeline of unknown class'}; the diffusers backend supports {sorted(FAMILIES)}",
        )
    family = FAMILIES[name]()
    from tav_pipeline.backends.diffusers.loss import check_scheduler

    check_scheduler(family.load_scheduler(pretrained, revision), prediction_type)
    return family


def fetch_pipeline(
    hub_id: str, out_dir: str | Path, revision: str = "main", rule: str = "fetch_diffusers_model"
) -> Path:
    """Rule ``fetch_diffusers_model`` (or ``rule``): download a hub pipeline into a local folder.

    Raises:
        MissingAssetError: the download fails (no network): place the folder by hand.
    """
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(hub_id, revision=revision, local_dir=str(out_dir))
    except Exception as exc:  # network, auth or a wrong id all mean: not here
        raise MissingAssetError(out_dir, rule, f"download of {hub_id}@{revision} failed: {exc}") from exc
    return Path(out_dir)
