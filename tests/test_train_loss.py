"""The objective: v target, min-SNR-5 weights, the reduction, and refused schedulers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from tav_pipeline.backends.diffusers.loss import (  # noqa: E402
    check_scheduler,
    diffusion_loss,
    diffusion_target,
    snr_weights,
    weighted_mse,
)
from tav_pipeline.errors import ConfigError  # noqa: E402


@pytest.fixture()
def ddpm() -> object:
    # Open-Sora-Plan v1.3's training scheduler: DDPM, v-prediction, zero terminal SNR
    return diffusers.DDPMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True)


def test_snr_weights_are_min_snr_gamma_over_snr_plus_one(ddpm: object) -> None:
    t = torch.tensor([0, 10, 200, 500, 900, 999])
    a = ddpm.alphas_cumprod[t].double()  # type: ignore[attr-defined]
    snr = a / (1 - a)
    expect_v = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / (snr + 1)
    expect_eps = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / snr
    expect_eps[snr == 0] = 1.0  # the limit of min(SNR, 5) / SNR; diffusers' formula gives 0/0 there
    assert torch.allclose(snr_weights(ddpm, t, 5.0, "v_prediction").double(), expect_v, rtol=1e-4)
    assert torch.allclose(snr_weights(ddpm, t, 5.0, "epsilon").double(), expect_eps, rtol=1e-4)
    w = snr_weights(ddpm, t, 5.0, "v_prediction")
    # low noise: SNR >> 5, the weight is clipped to 5 / (SNR + 1) < 1; high noise: SNR / (SNR + 1)
    assert w[0] < 0.01 and float(w[2]) == pytest.approx(min(float(snr[2]), 5) / (float(snr[2]) + 1), rel=1e-4)
    assert float(w[-1]) < 1e-3  # zero terminal SNR: the last step barely counts
    assert not torch.isnan(snr_weights(ddpm, t, 5.0, "epsilon")).any()
    assert torch.equal(snr_weights(ddpm, t, 0.0, "v_prediction"), torch.ones(6))


def test_v_target_and_reduction(ddpm: object) -> None:
    torch.manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    t = torch.tensor([100, 700])
    a = ddpm.alphas_cumprod[t].view(2, 1, 1, 1, 1)  # type: ignore[attr-defined]
    v = diffusion_target(ddpm, x0, noise, t, "v_prediction")
    assert torch.allclose(v, a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)
    assert diffusion_target(ddpm, x0, noise, t, "epsilon") is noise
    pred = v + 0.5
    w = torch.tensor([2.0, 0.5])
    assert float(weighted_mse(pred, v, w)) == pytest.approx((2.0 * 0.25 + 0.5 * 0.25) / 2)
    loss, weights = diffusion_loss(ddpm, v.clone(), x0, noise, t, gamma=5.0, prediction_type="v_prediction")
    assert float(loss) == 0.0 and weights.shape == (2,)
    loss, weights = diffusion_loss(ddpm, pred, x0, noise, t, gamma=5.0, prediction_type="v_prediction")
    assert float(loss) == pytest.approx(float((0.25 * weights).mean()), rel=1e-6)


def test_recipe_refuses_schedulers_it_does_not_fit() -> None:
    with pytest.raises(ConfigError, match="flow-matching"):
        check_scheduler(diffusers.FlowMatchEulerDiscreteScheduler(), "v_prediction")
    with pytest.raises(ConfigError, match="predicts 'epsilon'"):
        check_scheduler(diffusers.DDIMScheduler(prediction_type="epsilon"), "v_prediction")
    check_scheduler(diffusers.CogVideoXDDIMScheduler(prediction_type="v_prediction"), "v_prediction")


def test_pipelines_the_recipe_does_not_fit_are_refused(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from tav_pipeline.backends.diffusers.families import family_for
    from tav_pipeline.errors import MissingAssetError

    root = Path(str(tmp_path))
    for name, scheduler, match in (
        ("LTXPipeline", "FlowMatchEulerDiscreteScheduler", "flow-matching"),
        ("WanPipeline", "UniPCMultistepScheduler", "flow-matching"),
        ("TextToVideoSDPipeline", "DDIMScheduler", "supports"),
    ):
        folder = root / name
        folder.mkdir()
        (folder / "model_index.json").write_text(
            json.dumps({"_class_name": name, "scheduler": ["diffusers", scheduler]})
        )
        with pytest.raises(ConfigError, match=match):
            family_for(str(folder))
    with pytest.raises(MissingAssetError, match="fetch_diffusers_model"):
        family_for(str(root / "absent" / "CogVideoX-2b"))
