"""Launch files for ``accelerate launch``: an accelerate config for ``train.num_gpus`` processes on
one machine (paper section 4: "DeepSpeed ZeRO stage 2, single process") and the DeepSpeed ZeRO
stage-2 JSON it points at. With N processes ZeRO-2 shards the optimizer state and the gradients N
ways; the micro batch stays ``train.batch_size`` and ``train_batch_size`` is N times it.

Both backends use them. The DeepSpeed JSON follows Open-Sora-Plan's own
``scripts/accelerate_configs/zero2.json`` (bf16 from the accelerator's mixed precision, fp32
communication, overlapped and contiguous gradients, 5e8 reduce buckets) with the batch sizes and
the gradient clipping written out, since the diffusers trainer prepares no dataloader through
accelerate.

DeepSpeed also runs on a CPU (``DS_ACCELERATOR=cpu``, gloo), in one process or several: that is
how the demo trains. The accelerate config then says ``use_cpu: true``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tav_pipeline.train.config import TrainConfig


@dataclass(frozen=True)
class LaunchFiles:
    """The files ``accelerate launch --config_file`` needs."""

    accelerate_yaml: Path
    deepspeed_json: Path | None
    """``None`` when ``train.distributed`` is ``plain``."""
    use_cpu: bool


def deepspeed_config(cfg: TrainConfig, num_processes: int = 1) -> dict[str, Any]:
    """The DeepSpeed JSON: ZeRO stage ``cfg.zero_stage`` (paper: 2), bf16 or fp16 from the
    accelerator, gradient clipping ``cfg.max_grad_norm``, micro batch ``cfg.batch_size``;
    overlapped communication and contiguous gradient buckets only with more than one process."""
    return {
        "fp16": {
            "enabled": cfg.mixed_precision == "fp16",
            "loss_scale": 0,
            "loss_scale_window": 1000,
            "initial_scale_power": 16,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "bf16": {"enabled": cfg.mixed_precision == "bf16"},
        "communication_data_type": "fp32",
        "gradient_clipping": cfg.max_grad_norm,
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "train_batch_size": cfg.batch_size * num_processes,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {
            "stage": cfg.zero_stage,
            # With one process there is nothing to overlap or to reduce: copying each gradient
            # into a contiguous bucket then only costs time (0.577 -> 0.495 s/step on one H200 at
            # the paper's shape, benchmarks/train_overhead.zero.h200.md). The update is the same.
            "overlap_comm": num_processes > 1,
            "contiguous_gradients": num_processes > 1,
            "sub_group_size": 1e9,
            "reduce_bucket_size": 5e8,
        },
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }


def accelerate_config(
    deepspeed_json: Path | None, *, use_cpu: bool, num_processes: int = 1, port: int = 29513
) -> dict[str, Any]:
    """The accelerate config: one machine, ``num_processes`` processes (paper: 1), DeepSpeed when
    ``deepspeed_json`` is given, else accelerate without a distributed backend. On GPUs it runs on
    the ones the job sees (``gpu_ids: all``; :mod:`tav_pipeline.gpus` gives each job its own)."""
    d: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "DEEPSPEED" if deepspeed_json is not None else "NO",
        "machine_rank": 0,
        "main_process_ip": None,
        "main_process_port": port,
        "main_training_function": "main",
        "num_machines": 1,
        "num_processes": num_processes,
        "use_cpu": use_cpu,
        "rdzv_backend": "static",
        "same_network": True,
    }
    if deepspeed_json is not None:
        d["deepspeed_config"] = {"deepspeed_config_file": str(Path(deepspeed_json).resolve())}
    if not use_cpu:
        # every GPU the job sees: accelerate then leaves CUDA_VISIBLE_DEVICES (the job's claim, or
        # the scheduler's assignment) as it is; any other value replaces it
        d["gpu_ids"] = "all"
    return d


def free_port() -> int:
    """A TCP port nobody listens on now (two training jobs on one host must not share one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_launch_files(
    folder: str | Path, cfg: TrainConfig, *, use_cpu: bool, num_processes: int = 1, port: int | None = None
) -> LaunchFiles:
    """Write ``accelerate.yaml`` (and ``deepspeed_zero2.json`` unless ``cfg.distributed`` is
    ``plain``) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ds_path: Path | None = None
    if cfg.distributed == "deepspeed":
        ds_path = out / f"deepspeed_zero{cfg.zero_stage}.json"
        ds_path.write_text(json.dumps(deepspeed_config(cfg, num_processes), indent=2) + "\n")
    acc_path = out / "accelerate.yaml"
    acc = accelerate_config(ds_path, use_cpu=use_cpu, num_processes=num_processes, port=port or free_port())
    acc_path.write_text(yaml.safe_dump(acc, sort_keys=False))
    return LaunchFiles(acc_path, ds_path, use_cpu)


def check_gpus(needed: int, rule: str) -> int:
    """Fail early, naming the setting, when this job sees fewer GPUs than it launches processes
    (e.g. a SLURM job granted ``gpu:h200:1`` while ``train.num_gpus`` asks for 8). Returns the
    number of visible GPUs (not counted for one process: the trainer then says itself when it
    finds no GPU)."""
    if needed <= 1:
        return needed
    import torch

    from tav_pipeline.errors import ConfigError

    visible = torch.cuda.device_count()
    if visible < needed:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise ConfigError(
            "train.num_gpus",
            f"rule {rule} launches {needed} process(es), one per GPU, but this job sees {visible} GPU(s)"
            + (f" (CUDA_VISIBLE_DEVICES={shown})" if shown is not None else "")
            + "; on SLURM the training rules ask for gres gpu:<type>:<train.num_gpus>",
        )
    return visible


def launch_env(use_cpu: bool) -> dict[str, str]:
    """Environment additions for the launched trainer (DeepSpeed picks its CPU accelerator from
    ``DS_ACCELERATOR``; one CPU thread pool per process)."""
    env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if use_cpu:
        env["DS_ACCELERATOR"] = "cpu"
    return env
