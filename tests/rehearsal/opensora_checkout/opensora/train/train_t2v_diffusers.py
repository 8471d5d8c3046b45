"""STAND-IN FOR TESTS: not Open-Sora-Plan's trainer. Run as v1.3.1's is (``accelerate launch
--config_file X opensora/train/train_t2v_diffusers.py FLAGS`` from the checkout, the checkout on
PYTHONPATH), it behaves as that trainer does where the pipeline relies on it:

* the same flags (argparse; an unknown flag exits with status 2);
* ``--data``: ``VIDEO_ROOT,ANNOTATION_JSON`` lines; items without ``cap`` or ``resolution`` are
  dropped, and the line ``before filter: N, after filter: K, use_ratio: R%`` is printed (the only
  filter rules applied here; the pipeline writes only items that pass all of v1.3.1's);
* ``--pretrained`` a folder: the model, its config included, is that folder's (the flags
  ``--sparse1d``, ``--sparse_n``, ``--interpolation_scale_*`` do not change it);
* ``--resume_from_checkpoint latest``: the ``checkpoint*`` entry of ``--output_dir`` with the
  highest step, whatever its state (as v1.3.1: an unloadable one fails the launch);
* ONE pass over the annotation per launch, ``--train_batch_size`` x processes clips a step (in
  order, last partial batch dropped), stopping at ``--max_train_steps``;
* ``checkpoint-{step}/`` at every multiple of ``--checkpointing_steps``: ``model/`` and (with
  ``--use_ema``) ``model_ema/`` in the diffusers layout, the optimizer state in
  ``pytorch_model/``, DeepSpeed's ``latest`` tag file and ``random_states_{rank}.pkl`` last.

"Training" is a few numpy operations: each step pulls every weight towards the mean brightness of
the batch's first frames (decoded with PyAV) with momentum SGD and updates an EMA copy as
diffusers' ``EMAModel`` does, so weights depend on the data, the step and a correct resume.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from opensora import standin
from safetensors.numpy import load_file, save_file

MOMENTUM = 0.9
OPTIMIZER_FILE = "standin_optim_states.safetensors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of v1.3.1's ``train_t2v_diffusers.py`` (names, types, choices, defaults)."""
    p = argparse.ArgumentParser()
    add = p.add_argument
    add("--dataset", type=str, required=True)
    add("--data", type=str, default=None)
    add("--sample_rate", type=int, default=1)
    add("--train_fps", type=int, default=24)
    add("--drop_short_ratio", type=float, default=1.0)
    add("--speed_factor", type=float, default=1.0)
    add("--num_frames", type=int, default=65)
    add("--max_height", type=int, default=320)
    add("--max_width", type=int, default=240)
    add("--max_hxw", type=int, default=None)
    add("--min_hxw", type=int, default=None)
    add("--ood_img_ratio", type=float, default=0.0)
    add("--use_img_from_vid", action="store_true")
    add("--model_max_length", type=int, default=512)
    add("--cfg", type=float, default=0.1)
    add("--dataloader_num_workers", type=int, default=10)
    add("--train_batch_size", type=int, default=16)
    add("--group_data", action="store_true")
    add("--hw_stride", type=int, default=32)
    add("--force_resolution", action="store_true")
    add("--trained_data_global_step", type=int, default=None)
    add("--use_decord", action="store_true")
    add("--vae_fp32", action="store_true")
    add("--extra_save_mem", action="store_true")
    add("--model", type=str, choices=list(standin.MODEL_CLASSES), default="Latte-XL/122")
    add("--enable_tiling", action="store_true")
    for axis in ("h", "w", "t"):
        add(f"--interpolation_scale_{axis}", type=float, default=1.0)
    add("--ae", type=str, default="stabilityai/sd-vae-ft-mse")
    add("--ae_path", type=str, default="stabilityai/sd-vae-ft-mse")
    add("--text_encoder_name_1", type=str, default="DeepFloyd/t5-v1_1-xxl")
    add("--text_encoder_name_2", type=str, default=None)
    add("--cache_dir", type=str, default="./cache_dir")
    add("--pretrained", type=str, default=None)
    add("--sparse1d", action="store_true")
    add("--sparse_n", type=int, default=2)
    add("--skip_connection", action="store_true")
    add("--cogvideox_scheduler", action="store_true")
    add("--v1_5_scheduler", action="store_true")
    add("--rf_scheduler", action="store_true")
    add("--weighting_scheme", type=str, default="logit_normal", choices=["sigma_sqrt", "logit_normal", "mode", "cosmap"])
    add("--logit_mean", type=float, default=0.0)
    add("--logit_std", type=float, default=1.0)
    add("--mode_scale", type=float, default=1.29)
    add("--gradient_checkpointing", action="store_true")
    add("--snr_gamma", type=float, default=None)
    add("--use_ema", action="store_true")
    add("--ema_decay", type=float, default=0.9999)
    add("--ema_start_step", type=int, default=0)
    add("--offload_ema", action="store_true")
    add("--foreach_ema", action="store_true")
    add("--noise_offset", type=float, default=0.0)
    add("--prediction_type", type=str, default="epsilon")
    add("--rescale_betas_zero_snr", action="store_true")
    add("--log_interval", type=int, default=10)
    add("--enable_profiling", action="store_true")
    add("--num_sampling_steps", type=int, default=20)
    add("--guidance_scale", type=float, default=4.5)
    add("--enable_tracker", action="store_true")
    add("--seed", type=int, default=None)
    add("--output_dir", type=str, default=None)
    add("--checkpoints_total_limit", type=int, default=None)
    add("--checkpointing_steps", type=int, default=500)
    add("--resume_from_checkpoint", type=str, default=None)
    add("--logging_dir", type=str, default="logs")
    add("--report_to", type=str, default="tensorboard")
    add("--num_train_epochs", type=int, default=100)
    add("--max_train_steps", type=int, default=None)
    add("--gradient_accumulation_steps", type=int, default=1)
    add("--optimizer", type=str, default="adamW")
    add("--learning_rate", type=float, default=1e-4)
    add("--lr_warmup_steps", type=int, default=500)
    add("--use_8bit_adam", action="store_true")
    add("--adam_beta1", type=float, default=0.9)
    add("--adam_beta2", type=float, default=0.999)
    add("--prodigy_decouple", type=bool, default=True)
    add("--adam_weight_decay", type=float, default=1e-02)
    add("--adam_weight_decay_text_encoder", type=float, default=None)
    add("--adam_epsilon", type=float, default=1e-15)
    add("--prodigy_use_bias_correction", type=bool, default=True)
    add("--prodigy_safeguard_warmup", type=bool, default=True)
    add("--max_grad_norm", default=1.0, type=float)
    add("--prodigy_beta3", type=float, default=None)
    add("--lr_scheduler", type=str, default="constant")
    add("--allow_tf32", action="store_true")
    add("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"])
    add("--local_rank", type=int, default=-1)
    add("--sp_size", type=int, default=1)
    add("--train_sp_batch_size", type=int, default=1)
    return p.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> None:
    """What v1.3.1 loads or asserts before training: the VAE, the text encoder, the strides."""
    stride_t, stride_h, _ = standin.check_vae(args.ae, args.ae_path)
    standin.text_encoder(args.text_encoder_name_1, args.cache_dir)
    if args.text_encoder_name_2 is not None:
        standin.text_encoder(args.text_encoder_name_2, args.cache_dir)
    assert (args.num_frames - 1) % stride_t == 0, f"(Frames - 1) must be divisible by ae_stride_t ({stride_t})"
    assert args.max_height % stride_h == 0 and args.max_width % stride_h == 0, "size must be divisible by ae_stride_h"


def load_pretrained(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The model ``--pretrained`` names (a folder: its own config and weights)."""
    if args.pretrained is None or not os.path.isdir(args.pretrained):
        raise NotImplementedError("the stand-in trains only from a --pretrained folder (what the pipeline passes)")
    config, tensors = standin.load_model(args.pretrained)
    wanted = standin.MODEL_CLASSES[args.model]
    if config.get("_class_name") != wanted:
        raise ValueError(f"{args.pretrained} holds a {config.get('_class_name')}, --model {args.model} loads {wanted}")
    print(f"Load from {args.pretrained}")
    return config, tensors


def read_annotation(data_txt: str) -> list[dict[str, Any]]:
    """Items of every ``VIDEO_ROOT,ANNOTATION_JSON`` line, paths joined to their root, filtered
    and counted as v1.3.1 prints it."""
    items: list[dict[str, Any]] = []
    for line in Path(data_txt).read_text().splitlines():
        if not line.strip():
            continue
        root, annotation = line.strip().split(",")
        for item in json.loads(Path(annotation).read_text()):
            items.append({**item, "path": os.path.join(root, item["path"])})
    kept = [i for i in items if i.get("cap") is not None and i.get("resolution") is not None]
    ratio = round(len(kept) / len(items), 5) * 100 if items else 0.0
    print(f"before filter: {len(items)}, after filter: {len(kept)}, use_ratio: {ratio}%", flush=True)
    return kept


def first_frame_brightness(item: dict[str, Any]) -> float:
    """Mean of the clip's first frame in [0, 1] (the reader needs the item's ``fps`` like v1.3.1's)."""
    import av

    _ = item["fps"]
    with av.open(item["path"]) as container:
        frame = next(container.decode(video=0))
        return float(frame.to_ndarray(format="rgb24").mean() / 255.0)


class State:
    """Weights, their EMA and the optimizer state: what ``accelerator.save_state`` keeps."""

    def __init__(self, args: argparse.Namespace, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.args = args
        self.config = config
        self.weights = {k: v.astype(np.float32) for k, v in tensors.items()}
        self.momentum = {k: np.zeros_like(v) for k, v in self.weights.items()}
        self.ema = {k: v.copy() for k, v in self.weights.items()}
        self.ema_step = 0

    def step(self, target: float) -> float:
        """One optimizer step towards ``target``; returns the loss before it."""
        lr, wd = self.args.learning_rate, self.args.adam_weight_decay
        loss = 0.0
        for k, w in self.weights.items():
            grad = (w - np.float32(target)).astype(np.float32)
            loss += float(np.mean(grad * grad))
            self.momentum[k] = (np.float32(MOMENTUM) * self.momentum[k] + grad).astype(np.float32)
            self.weights[k] = (w - np.float32(lr) * (self.momentum[k] + np.float32(wd) * w)).astype(np.float32)
        if self.args.use_ema:
            self.ema_step += 1
            decay = self.ema_decay()
            for k, w in self.weights.items():
                self.ema[k] = (self.ema[k] - np.float32(1 - decay) * (self.ema[k] - w)).astype(np.float32)
        return loss / len(self.weights)

    def ema_decay(self) -> float:
        """diffusers' ``EMAModel.get_decay`` without warmup: ``(1 + s) / (10 + s)`` capped at the decay."""
        s = max(0, self.ema_step - self.args.ema_start_step - 1)
        return 0.0 if s <= 0 else min((1 + s) / (10 + s), self.args.ema_decay)

    def save(self, folder: Path, rank: int) -> None:
        """``checkpoint-{step}``: the model folders first, the RNG state last."""
        folder.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            if self.args.use_ema:
                ema_config = {**self.config, "decay": self.args.ema_decay, "optimization_step": self.ema_step,
                              "update_after_step": self.args.ema_start_step, "use_ema_warmup": False}
                standin.save_model(folder / "model_ema", ema_config, self.ema)
            standin.save_model(folder / "model", self.config, self.weights)
            (folder / "pytorch_model").mkdir(parents=True, exist_ok=True)
            save_file(self.momentum, str(folder / "pytorch_model" / OPTIMIZER_FILE))
            (folder / "latest").write_text("pytorch_model")
        with open(folder / f"random_states_{rank}.pkl", "wb") as f:
            pickle.dump({"random_state": random.getstate(), "numpy_random_seed": np.random.get_state()}, f)

    def load(self, folder: Path) -> None:
        """``accelerator.load_state``: the model, the EMA and the optimizer state."""
        self.config, self.weights = standin.load_model(folder / "model")
        if self.args.use_ema:
            ema_config, self.ema = standin.load_model(folder / "model_ema")
            self.ema_step = int(ema_config["optimization_step"])
        self.momentum = load_file(str(folder / "pytorch_model" / OPTIMIZER_FILE))


def latest(output_dir: str) -> str | None:
    """v1.3.1's ``latest``: the ``checkpoint*`` name with the highest step, complete or not."""
    names = sorted((d for d in os.listdir(output_dir) if d.startswith("checkpoint")), key=lambda d: int(d.split("-")[1]))
    return names[-1] if names else None


def main(args: argparse.Namespace) -> None:
    rank, world = standin.dist_env()
    check_inputs(args)
    os.makedirs(args.output_dir, exist_ok=True)
    config, tensors = load_pretrained(args)
    items = read_annotation(args.data)
    state = State(args, config, tensors)
    random.seed(args.seed)
    np.random.seed(args.seed or 0)
    global_step = 0
    if args.resume_from_checkpoint:
        path = latest(args.output_dir) if args.resume_from_checkpoint == "latest" else os.path.basename(args.resume_from_checkpoint)
        if path is None:
            print(f"Checkpoint '{args.resume_from_checkpoint}' does not exist. Starting a new training run.")
        else:
            print(f"Resuming from checkpoint {path}")
            state.load(Path(args.output_dir) / path)
            global_step = int(path.split("-")[1])
    per_step = args.train_batch_size * world * args.gradient_accumulation_steps
    log_dir = Path(args.output_dir, args.logging_dir, os.path.basename(args.output_dir))
    if rank == 0:
        log_dir.mkdir(parents=True, exist_ok=True)
    for b in range(len(items) // per_step):
        if global_step >= args.max_train_steps:
            break
        batch = items[b * per_step:(b + 1) * per_step]
        loss = state.step(sum(first_frame_brightness(i) for i in batch) / len(batch))
        global_step += 1
        if rank == 0:
            with open(log_dir / "standin_losses.tsv", "a") as f:
                f.write(f"{global_step}\t{loss:.8g}\n")
        if global_step % args.checkpointing_steps == 0:
            save_path = Path(args.output_dir, f"checkpoint-{global_step}")
            state.save(save_path, rank)
            print(f"Saved state to {save_path}", flush=True)
    print(f"stand-in trainer: stopped at step {global_step}", flush=True)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
