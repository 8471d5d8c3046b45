"""The argv of Open-Sora-Plan's trainer and sampler, and the environment they run in."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tav_pipeline.backends.opensora.upstream import SAMPLE_MODULE, TRAIN_SCRIPT
from tav_pipeline.errors import MissingAssetError
from tav_pipeline.train.config import GenerateConfig, TrainConfig


def train_argv(
    cfg: TrainConfig,
    *,
    accelerate_yaml: str | Path,
    data_txt: str | Path,
    output_dir: str | Path,
    max_train_steps: int,
    checkpointing_steps: int,
) -> list[str]:
    """``accelerate launch --config_file ... opensora/train/train_t2v_diffusers.py`` with the
    paper's settings (run from the checkout's root)."""
    osp = cfg.opensora
    argv = [
        "accelerate",
        "launch",
        "--config_file",
        str(Path(accelerate_yaml).resolve()),
        TRAIN_SCRIPT,
        "--dataset",
        "t2v",
        "--data",
        str(Path(data_txt).resolve()),
        "--model",
        osp.model,
        "--pretrained",
        str(Path(osp.pretrained).resolve()),
        "--ae",
        osp.ae,
        "--ae_path",
        str(Path(osp.ae_path).resolve()),
        "--text_encoder_name_1",
        osp.text_encoder_name_1,
        "--cache_dir",
        str(Path(osp.cache_dir).resolve()),
        "--num_frames",
        str(cfg.num_frames),
        "--max_height",
        str(cfg.height),
        "--max_width",
        str(cfg.width),
        "--force_resolution",
        "--train_fps",
        str(int(cfg.fps)),
        "--sample_rate",
        str(cfg.sample_rate),
        "--drop_short_ratio",
        str(cfg.drop_short_ratio),
        "--speed_factor",
        "1.0",
        "--train_batch_size",
        str(cfg.batch_size),
        "--gradient_accumulation_steps",
        "1",
        "--dataloader_num_workers",
        str(osp.dataloader_num_workers),
        "--learning_rate",
        str(cfg.effective_learning_rate),
        "--lr_scheduler",
        cfg.lr_scheduler,
        "--lr_warmup_steps",
        str(cfg.lr_warmup_steps),
        "--adam_beta1",
        str(cfg.adam_beta1),
        "--adam_beta2",
        str(cfg.adam_beta2),
        "--adam_weight_decay",
        str(cfg.adam_weight_decay),
        "--adam_epsilon",
        str(cfg.adam_epsilon),
        "--max_grad_norm",
        str(cfg.max_grad_norm),
        "--mixed_precision",
        cfg.mixed_precision,
        "--model_max_length",
        str(osp.model_max_length),
        "--cfg",
        str(cfg.text_drop_prob),
        "--interpolation_scale_t",
        str(osp.interpolation_scale_t),
        "--interpolation_scale_h",
        str(osp.interpolation_scale_h),
        "--interpolation_scale_w",
        str(osp.interpolation_scale_w),
        "--prediction_type",
        cfg.prediction_type,
        "--seed",
        str(cfg.seed),
        "--output_dir",
        str(Path(output_dir).resolve()),
        "--checkpointing_steps",
        str(checkpointing_steps),
        "--max_train_steps",
        str(max_train_steps),
        "--resume_from_checkpoint",
        "latest",
        "--report_to",
        osp.report_to,
    ]
    if cfg.snr_gamma > 0:
        argv += ["--snr_gamma", str(cfg.snr_gamma)]
    if cfg.use_ema:
        argv += ["--use_ema", "--ema_decay", str(cfg.ema_decay), "--ema_start_step", str(cfg.ema_start_step)]
    if cfg.gradient_checkpointing:
        argv.append("--gradient_checkpointing")
    if osp.sparse1d:
        argv += ["--sparse1d", "--sparse_n", str(osp.sparse_n)]
    if osp.rescale_betas_zero_snr:
        argv.append("--rescale_betas_zero_snr")
    if osp.use_decord:
        argv.append("--use_decord")
    if osp.allow_tf32:
        argv.append("--allow_tf32")
    return argv + list(osp.extra_args)


def sample_argv(
    cfg: TrainConfig,
    gen: GenerateConfig,
    *,
    model_path: str | Path,
    prompt_file: str | Path,
    save_dir: str | Path,
    port: int,
) -> list[str]:
    """``torchrun --nproc_per_node 1 -m opensora.sample.sample`` for one prompt file."""
    osp, s = cfg.opensora, gen.opensora
    argv = [
        "torchrun",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "1",
        "--master_port",
        str(port),
        "-m",
        SAMPLE_MODULE,
        "--model_path",
        str(Path(model_path).resolve()),
        "--version",
        "v1_3",
        "--model_type",
        "t2v",
        "--num_frames",
        str(cfg.num_frames),
        "--height",
        str(cfg.height),
        "--width",
        str(cfg.width),
        "--fps",
        str(int(cfg.fps)),
        "--cache_dir",
        str(Path(osp.cache_dir).resolve()),
        "--text_encoder_name_1",
        osp.text_encoder_name_1,
        "--text_prompt",
        str(Path(prompt_file).resolve()),
        "--ae",
        osp.ae,
        "--ae_path",
        str(Path(osp.ae_path).resolve()),
        "--save_img_path",
        str(Path(save_dir).resolve()),
        "--guidance_scale",
        str(s.guidance_scale),
        "--num_sampling_steps",
        str(s.num_sampling_steps),
        "--max_sequence_length",
        str(s.max_sequence_length),
        "--sample_method",
        s.sample_method,
        "--seed",
        str(gen.seed),
        "--num_samples_per_prompt",
        "1",
        "--prediction_type",
        cfg.prediction_type,
    ]
    if osp.rescale_betas_zero_snr:
        argv.append("--rescale_betas_zero_snr")
    if s.save_memory:
        argv.append("--save_memory")
    return argv + list(s.extra_args)


def checkout_env(repo: str | Path) -> dict[str, str]:
    """The checkout on ``PYTHONPATH`` (its README installs it with ``pip install -e .``), and the
    hub offline, as the official v1.3 training script sets it (:func:`check_weights` has made sure
    the weights and mT5-XXL are on disk)."""
    root = str(Path(repo).resolve())
    path = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": root + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


def executable(name: str) -> str:
    """``accelerate`` / ``torchrun`` on PATH, else beside this interpreter (an env's own tools, when
    the env runs without being activated)."""
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        raise MissingAssetError(name, "conda env envs/train-opensora.yaml", f"'{name}' is not on PATH")
    return exe
