"""The paper's training objective: v-prediction with min-SNR-gamma loss weighting (gamma = 5).

This is the loss of Open-Sora-Plan v1.3's trainer (``train_t2v_diffusers.py``), written out so it
can be tested on its own. For a diffusion schedule with cumulative signal rate ``a_t``:

* ``SNR(t) = a_t / (1 - a_t)`` (:func:`diffusers.training_utils.compute_snr`);
* the v-prediction target is ``v = sqrt(a_t) * noise - sqrt(1 - a_t) * x0``
  (the scheduler's ``get_velocity``);
* the per-sample weight is ``min(SNR, gamma) / (SNR + 1)`` for v-prediction and
  ``min(SNR, gamma) / SNR`` for epsilon-prediction (Hang et al. 2023, section 4.2; computed as
  ``min(gamma / SNR, 1)`` so a zero-terminal-SNR step weighs 1 instead of 0/0);
* the loss is the weighted mean over the batch of the per-sample mean squared error.

Flow-matching schedulers have no ``alphas_cumprod`` and no v target: :func:`check_scheduler`
refuses them with a :class:`~tav_pipeline.errors.ConfigError` that says why.
"""

from __future__ import annotations

from typing import Any

import torch

from tav_pipeline.errors import ConfigError

FLOW_MATCHING_HINT = (
    "the paper's recipe (v-prediction target, min-SNR weighting on a DDPM schedule) needs a "
    "scheduler with alphas_cumprod and a v target; flow-matching models (LTX-Video, HunyuanVideo, "
    "Wan, Mochi, SD3-style) are trained on a velocity between noise and data instead, so the recipe "
    "does not transfer"
)


def check_scheduler(scheduler: Any, prediction_type: str) -> None:
    """Refuse a noise scheduler the recipe cannot use.

    Raises:
        ConfigError: for flow-matching schedulers, schedulers without ``alphas_cumprod`` or
            ``get_velocity``, and a model whose own prediction type differs from ``prediction_type``
            (post-training would have to re-learn its output parameterisation).
    """
    name = type(scheduler).__name__
    if "FlowMatch" in name or not hasattr(scheduler, "alphas_cumprod"):
        raise ConfigError("train.diffusers.pretrained", f"scheduler {name}: {FLOW_MATCHING_HINT}")
    if prediction_type == "v_prediction" and not hasattr(scheduler, "get_velocity"):
        raise ConfigError("train.diffusers.pretrained", f"scheduler {name} has no get_velocity (v target)")
    own = scheduler.config.get("prediction_type", "epsilon")
    if own != prediction_type:
        raise ConfigError(
            "train.prediction_type",
            f"the model's scheduler ({name}) predicts {own!r} but train.prediction_type is {prediction_type!r}; "
            "post-training must keep the model's own target",
        )


def sample_timesteps(
    scheduler: Any, batch: int, device: torch.device | str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform integer timesteps in ``[0, num_train_timesteps)`` (Open-Sora-Plan, one process)."""
    high = int(scheduler.config.num_train_timesteps)
    return torch.randint(0, high, (batch,), device=device, generator=generator, dtype=torch.long)


def diffusion_target(
    scheduler: Any, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """What the denoiser must predict: the noise (``epsilon``) or the velocity (``v_prediction``)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        velocity: torch.Tensor = scheduler.get_velocity(clean, noise, timesteps)
        return velocity
    raise ConfigError("train.prediction_type", f"unknown value {prediction_type!r}")


def snr(scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of each timestep (diffusers' :func:`compute_snr`)."""
    import importlib

    training_utils: Any = importlib.import_module("diffusers.training_utils")
    value: torch.Tensor = training_utils.compute_snr(scheduler, timesteps)
    return value


def snr_weights(scheduler: Any, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Per-sample min-SNR-gamma weights; all ones when ``gamma`` is 0 (weighting off).

    Returns:
        float32 tensor of shape ``(len(timesteps),)``.
    """
    if gamma <= 0:
        return torch.ones(timesteps.shape, dtype=torch.float32, device=timesteps.device)
    s = snr(scheduler, timesteps).float()
    if prediction_type == "v_prediction":
        return torch.clamp(s, max=float(gamma)) / (s + 1.0)
    if prediction_type == "epsilon":
        # min(SNR, gamma) / SNR written as min(gamma / SNR, 1): the same value, and 1 instead of
        # 0/0 at a zero-terminal-SNR step (diffusers' DDPM schedule with rescale_betas_zero_snr)
        return torch.clamp(float(gamma) / s, max=1.0)
    raise ConfigError("train.prediction_type", f"unknown value {prediction_type!r}")


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mean_b( w_b * mean(|pred_b - target_b|^2) )`` in float32 (Open-Sora-Plan's reduction)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    per_sample = (prediction.float() - target.float()).pow(2).reshape(prediction.shape[0], -1).mean(dim=1)
    return (per_sample * weights.float().to(per_sample.device)).mean()


def diffusion_loss(
    scheduler: Any,
    prediction: torch.Tensor,
    clean: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    gamma: float,
    prediction_type: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss for one batch and the weights it used.

    Arguments:
        scheduler: the model's noise scheduler (DDPM-family, with ``alphas_cumprod``).
        prediction: the denoiser's output for ``scheduler.add_noise(clean, noise, timesteps)``.
        clean: clean latents, batch first (any layout after that).
        noise: the noise that was added.
        timesteps: integer timesteps, one per sample.
        gamma: min-SNR gamma (0: unweighted).
        prediction_type: ``v_prediction`` or ``epsilon``.

    Returns:
        ``(loss, weights)``.
    """
    target = diffusion_target(scheduler, clean, noise, timesteps, prediction_type)
    weights = snr_weights(scheduler, timesteps, gamma, prediction_type)
    return weighted_mse(prediction, target, weights), weights
