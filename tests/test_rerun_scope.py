"""A config change reruns exactly what it changes: dry runs over the finished demo, and the
config slices each rule takes, checked against the code that reads them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SNAKEMAKE
from test_shipped_config import job_stats

from tav_pipeline.backends import diffusers as diffusers_backend
from tav_pipeline.backends import opensora as opensora_backend
from tav_pipeline.backends.diffusers import latents
from tav_pipeline.backends.opensora import commands
from tav_pipeline.train import targets as TT
from tav_pipeline.train.config import GenerateConfig, TrainConfig


def plan(work: Path, tmp_path: Path, change: dict[str, Any]) -> dict[str, int]:
    """The jobs `snakemake -n` plans over the finished demo with ``change`` merged on top."""
    extra = tmp_path / "change.yaml"
    extra.write_text(yaml.safe_dump(change))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    proc = subprocess.run(
        SNAKEMAKE
        + ["--profile", "profiles/demo", "-n", "--nolock", "--configfile", "config.yaml", "profiles/demo/overrides.yaml", str(extra)],
        cwd=work, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return job_stats(out) if "Job stats:" in out else {}


TRAINING = {"train_model", "cache_latents"}


@pytest.mark.slow
def test_nothing_reruns_without_a_change(demo_workdir: Path, tmp_path: Path) -> None:
    assert plan(demo_workdir, tmp_path, {}) == {}


@pytest.mark.slow
def test_adding_an_epoch_trains_and_scores_only_that_epoch(demo_workdir: Path, tmp_path: Path) -> None:
    jobs = plan(demo_workdir, tmp_path, {"train": {"epochs": [5, 10, 15]}})
    assert jobs["train_model"] == 1 and jobs["generate_videos"] == 1
    assert "cache_latents" not in jobs and "build_tav" not in jobs and "caption_scenes" not in jobs
    assert jobs["count_segments"] == 3 and jobs["evaluate_vbench"] == 3  # epoch 15's groups A/B/C
    assert jobs["make_tables"] == 1 and jobs["summarise_evaluation"] == 1


@pytest.mark.slow
def test_a_generation_setting_retrains_nothing(demo_workdir: Path, tmp_path: Path) -> None:
    jobs = plan(demo_workdir, tmp_path, {"generate": {"diffusers": {"num_inference_steps": 5}}})
    assert not TRAINING & set(jobs)
    assert jobs["generate_videos"] == 3  # baseline, epoch_5, epoch_10


@pytest.mark.slow
def test_an_evaluation_setting_regenerates_nothing(demo_workdir: Path, tmp_path: Path) -> None:
    jobs = plan(demo_workdir, tmp_path, {"evaluate": {"segments": {"threshold": 30.0}}})
    assert not (TRAINING | {"generate_videos"}) & set(jobs)
    assert jobs["count_segments"] == 9 and "evaluate_vbench" not in jobs


@pytest.mark.slow
def test_the_learning_rate_retrains_but_keeps_the_baseline(demo_workdir: Path, tmp_path: Path) -> None:
    jobs = plan(demo_workdir, tmp_path, {"train": {"learning_rate": 2.0e-5}})
    assert jobs["train_model"] == 2 and "cache_latents" not in jobs
    assert jobs["generate_videos"] == 2  # the two epochs; the baseline's videos stay


def _everything_else_changed() -> dict[str, Any]:
    """A train: section whose every key outside the slices differs from the paper's."""
    cfg = TrainConfig().to_dict()
    cfg.update(
        epochs=[3, 7], epoch_steps=5, batch_size=2, learning_rate=3e-4, lr_scheduler="linear", lr_warmup_steps=9,
        adam_beta1=0.8, adam_beta2=0.95, adam_weight_decay=0.0, adam_epsilon=1e-8, max_grad_norm=2.0,
        mixed_precision="fp16", use_ema=False, ema_decay=0.99, ema_start_step=4, gradient_checkpointing=False,
        snr_gamma=0.0, text_drop_prob=0.5, distributed="plain", zero_stage=1, num_gpus=1, lr_scaling="sqrt",
        checkpointing_steps=7,
    )  # fmt: skip
    cfg["opensora"].update(
        dataloader_num_workers=1, use_decord=False, allow_tf32=False, report_to="wandb", relaunch="repeat", data_order="per_epoch",
        unusable_clips="error", extra_args=["--foo"], git_url="x", weights_hub_id="y",
    )  # fmt: skip
    cfg["diffusers"].update(cache_latents=False, dataloader_num_workers=0, allow_tf32=False, hub_id="z")
    return cfg


def _changed(full: dict[str, Any], default: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in full.items():
        if isinstance(v, dict):
            out |= _changed(v, default[k], f"{prefix}{k}.")
        elif v != default[k]:
            out.add(prefix + k)
    return out


def test_every_key_outside_the_slices_is_changed_above() -> None:
    """So that a key added to train: later must be placed in a slice or in the test above."""
    default = TrainConfig().to_dict()
    changed = _changed(_everything_else_changed(), default)
    top = {k for k, v in default.items() if not isinstance(v, dict)}
    generation = set(TT.GENERATION_KEYS) | {f"diffusers.{k}" for k in diffusers_backend.GENERATION_KEYS}
    generation |= {f"opensora.{k}" for k in default["opensora"] if k not in opensora_backend.TRAINING_ONLY_KEYS}
    caching = set(TT.CACHE_KEYS) | {f"diffusers.{k}" for k in TT.CACHE_DIFFUSERS_KEYS}
    every = top | {f"diffusers.{k}" for k in default["diffusers"]} | {f"opensora.{k}" for k in default["opensora"]}
    assert every - generation - caching - {"num_gpus"} <= changed  # num_gpus > 1 needs GPUs to build


def test_the_sampler_reads_only_the_generation_slice(tmp_path: Path) -> None:
    """Open-Sora-Plan's sampling command from the slice equals the one from the whole section,
    whatever the training keys say: a key the sampler reads cannot be missing from the slice."""
    full = _everything_else_changed()
    gen = GenerateConfig()
    args = {"model_path": tmp_path, "prompt_file": tmp_path / "p.txt", "save_dir": tmp_path / "s", "port": 1}
    whole = commands.sample_argv(TrainConfig.from_dict(full), gen, **args)
    sliced = commands.sample_argv(TrainConfig.from_dict(TT.generation_settings(full)), gen, **args)
    assert whole == sliced
    assert TT.generation_settings(full) == TT.generation_settings(TrainConfig().to_dict())


def test_the_latent_cache_reads_only_the_caching_slice() -> None:
    full = _everything_else_changed()
    sliced = TrainConfig.from_dict(TT.caching_settings(full))
    whole = TrainConfig.from_dict(full)
    pretrained = whole.diffusers.pretrained
    assert latents.cache_settings(whole, pretrained) == latents.cache_settings(sliced, pretrained)
    assert TT.caching_settings(full) == TT.caching_settings(TrainConfig().to_dict())
    for key in latents.cache_settings(whole, pretrained):  # every setting the cache records is in the slice
        assert key in TT.CACHE_KEYS or key in TT.CACHE_DIFFUSERS_KEYS, key


def test_an_epochs_job_sees_the_epochs_up_to_it() -> None:
    train = TrainConfig().to_dict()
    assert TT.epoch_settings(train, 24)["epochs"] == [16, 24]
    more = {**train, "epochs": [16, 24, 36, 48]}
    for e in (16, 24, 36):
        assert TT.epoch_settings(more, e) == TT.epoch_settings(train, e)
    cfg = TrainConfig.from_dict(TT.epoch_settings(more, 36))
    assert cfg.previous_epoch(36) == 24


@pytest.mark.slow
def test_the_retry_settings_refetch_nothing(demo_workdir: Path, tmp_path: Path) -> None:
    assert plan(demo_workdir, tmp_path, {"source": {"retries": 9, "rate_limit_sleep": 1.0}}) == {}
