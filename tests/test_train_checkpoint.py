"""Checkpoint layout, epoch arithmetic and where a job resumes, plus the launch files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.accelerate_config import check_gpus, deepspeed_config, write_launch_files
from tav_pipeline.train.config import TrainConfig


def _state(folder: Path, step: int, spe: int = 10, processes: int = 1) -> Path:
    folder.mkdir(parents=True)
    ckpt.TrainState(
        model="m",
        backend="diffusers",
        epoch=step // spe,
        global_step=step,
        steps_per_epoch=spe,
        usable_clips=spe,
        base="b",
        num_processes=processes,
    ).write(folder)
    return folder


def test_epoch_job_steps() -> None:
    job = ckpt.EpochJob(16, 24, 450)
    assert (job.start_step, job.end_step) == (7200, 10800)
    assert job.save_steps() == [7650 + 450 * i for i in range(8)]
    assert ckpt.EpochJob(0, 1, 4).save_steps(every=3) == [3, 4]


def test_resume_source_prefers_leftovers_then_previous_epoch(tmp_path: Path) -> None:
    job = ckpt.EpochJob(1, 3, 10)
    work = tmp_path / "work"
    prev = _state(tmp_path / "epoch_1", 10)
    assert ckpt.resume_source(work, prev, job) == (10, prev)
    (work / "checkpoint-20").mkdir(parents=True)  # incomplete: no train_state.json
    assert ckpt.resume_source(work, prev, job) == (10, prev)
    left = _state(work / "checkpoint-25", 25)
    assert ckpt.resume_source(work, prev, job) == (25, left)
    assert ckpt.resume_source(tmp_path / "none", None, ckpt.EpochJob(0, 1, 10)) == (0, None)
    with pytest.raises(MissingAssetError, match="train_model"):
        ckpt.resume_source(tmp_path / "none", None, job)
    with pytest.raises(MissingAssetError, match="step 10"):
        ckpt.resume_source(tmp_path / "none", prev, ckpt.EpochJob(1, 2, 12))  # the split changed


def test_a_state_resumes_only_with_as_many_processes(tmp_path: Path) -> None:
    job = ckpt.EpochJob(1, 2, 10)
    prev = _state(tmp_path / "epoch_1", 10, processes=8)
    assert ckpt.resume_source(tmp_path / "work", prev, job, num_processes=8) == (10, prev)
    assert ckpt.resume_source(tmp_path / "work", prev, job) == (10, prev)  # None: not checked (plain)
    with pytest.raises(ConfigError, match="trained by 8 process.*this job runs 2.*num_gpus: 8 or retrain"):
        ckpt.resume_source(tmp_path / "work", prev, job, num_processes=2)
    left = _state(tmp_path / "work" / "checkpoint-15", 15, processes=2)
    assert ckpt.resume_source(tmp_path / "work", prev, job, num_processes=2) == (15, left)
    with pytest.raises(ConfigError, match="or delete .*work to restart"):
        ckpt.resume_source(tmp_path / "work", prev, job, num_processes=8)
    # states written before the setting existed were one process
    (prev / ckpt.STATE_FILE).write_text(json.dumps({k: v for k, v in json.loads((prev / ckpt.STATE_FILE).read_text()).items() if k != "num_processes"}))
    assert ckpt.TrainState.read(prev).num_processes == 1


def test_rotate_unlinks_links_and_keeps_the_latest(tmp_path: Path) -> None:
    target = _state(tmp_path / "elsewhere", 10)
    work = tmp_path / "work"
    work.mkdir()
    (work / "checkpoint-10").symlink_to(target, target_is_directory=True)
    _state(work / "checkpoint-20", 20)
    _state(work / "checkpoint-30", 30)
    removed = ckpt.rotate(work, keep=1)
    assert sorted(p.name for p in removed) == ["checkpoint-10", "checkpoint-20"]
    assert target.is_dir() and [p.name for p in work.iterdir()] == ["checkpoint-30"]
    with pytest.raises(MissingAssetError, match="generate.weights"):
        ckpt.weights_dir(work / "checkpoint-30", "ema")


def test_launch_files_single_process_zero2(tmp_path: Path) -> None:
    cfg = TrainConfig()
    ds = deepspeed_config(cfg)
    assert ds["zero_optimization"]["stage"] == 2 and ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["gradient_clipping"]) == (
        1,
        1,
        1.0,
    )
    # one process reduces nothing: no overlapped communication, no contiguous gradient buckets;
    # several processes keep Open-Sora-Plan's zero2.json settings
    zero1, zero2 = ds["zero_optimization"], deepspeed_config(cfg, num_processes=2)["zero_optimization"]
    assert (zero1["overlap_comm"], zero1["contiguous_gradients"]) == (False, False)
    assert (zero2["overlap_comm"], zero2["contiguous_gradients"]) == (True, True)
    files = write_launch_files(tmp_path, cfg, use_cpu=False, port=29600)
    acc = yaml.safe_load(files.accelerate_yaml.read_text())
    # one process runs on the GPU the job was given (tests/test_gpus.py), never on a fixed GPU 0
    assert (acc["distributed_type"], acc["num_processes"], acc["num_machines"], acc["use_cpu"], acc["gpu_ids"]) == (
        "DEEPSPEED",
        1,
        1,
        False,
        "all",
    )
    assert Path(acc["deepspeed_config"]["deepspeed_config_file"]) == files.deepspeed_json.resolve()  # type: ignore[union-attr]
    assert json.loads(files.deepspeed_json.read_text()) == json.loads(json.dumps(ds))  # type: ignore[union-attr]
    plain = write_launch_files(tmp_path / "plain", TrainConfig.from_dict({"distributed": "plain"}), use_cpu=True)
    assert (
        plain.deepspeed_json is None and yaml.safe_load(plain.accelerate_yaml.read_text())["distributed_type"] == "NO"
    )
    accelerate = pytest.importorskip("accelerate.commands.config.config_args")
    loaded = accelerate.load_config_from_file(str(files.accelerate_yaml))
    assert loaded.num_processes == 1 and loaded.deepspeed_config["deepspeed_config_file"].endswith(
        "deepspeed_zero2.json"
    )


def test_launch_files_for_n_gpus_shard_zero2_across_them(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"num_gpus": 8, "batch_size": 2})
    files = write_launch_files(tmp_path, cfg, use_cpu=False, num_processes=cfg.num_gpus, port=29600)
    acc = yaml.safe_load(files.accelerate_yaml.read_text())
    assert (acc["distributed_type"], acc["num_processes"], acc["num_machines"], acc["gpu_ids"]) == (
        "DEEPSPEED",
        8,
        1,
        "all",
    )
    ds = json.loads(files.deepspeed_json.read_text())  # type: ignore[union-attr]
    assert (ds["train_micro_batch_size_per_gpu"], ds["train_batch_size"], ds["gradient_accumulation_steps"]) == (
        2,
        16,
        1,
    )
    assert ds["zero_optimization"]["stage"] == 2
    cpu = yaml.safe_load(write_launch_files(tmp_path / "cpu", cfg, use_cpu=True, num_processes=2).accelerate_yaml.read_text())
    assert (cpu["num_processes"], cpu["use_cpu"], "gpu_ids" in cpu) == (2, True, False)
    accelerate = pytest.importorskip("accelerate.commands.config.config_args")
    loaded = accelerate.load_config_from_file(str(files.accelerate_yaml))
    assert (loaded.num_processes, loaded.gpu_ids, loaded.distributed_type.name) == (8, "all", "DEEPSPEED")


def test_too_few_visible_gpus_is_an_error_before_launching(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert check_gpus(2, "train_model") == 2
    with pytest.raises(ConfigError, match=r"rule train_model launches 8 process.*sees 2 GPU\(s\) \(CUDA_VISIBLE_DEVICES=0,1\)"):
        check_gpus(8, "train_model")


def test_training_jobs_ask_slurm_for_their_gpu_count() -> None:
    from tav_pipeline.train import targets

    assert targets.slurm_gres(8, "gpu:h200:1") == "gpu:h200:8"
    assert targets.slurm_gres(2, "gpu:a100") == "gpu:a100:2"
    assert targets.slurm_gres(4, "gpu:1") == "gpu:4"
    assert targets.slurm_gres(1, "gpu") == "gpu:1"
    assert targets.training_gpus(TrainConfig.from_dict({"num_gpus": 4}).to_dict()) == 4


def test_caching_and_generation_take_train_without_the_gpu_count() -> None:
    from tav_pipeline.train import targets

    one, eight = TrainConfig().to_dict(), TrainConfig.from_dict({"num_gpus": 8, "lr_scaling": "sqrt"}).to_dict()
    assert one != eight
    assert targets.generation_settings(one) == targets.generation_settings(eight)
    assert targets.caching_settings(one) == targets.caching_settings(eight)
    assert TrainConfig.from_dict(targets.generation_settings(eight)) == TrainConfig()  # still a valid config


def test_rule_targets_follow_the_config() -> None:
    from tav_pipeline.train import targets

    train = TrainConfig().to_dict()
    generate = {"groups": ["A", "B", "C"], "baseline": True}
    assert targets.checkpoint_targets("results", train) == [
        f"results/checkpoints/opensora_plan/epoch_{e}" for e in (16, 24, 36)
    ]
    assert targets.previous_checkpoint("results", train, "opensora_plan", "24") == [
        "results/checkpoints/opensora_plan/epoch_16"
    ]
    assert targets.previous_checkpoint("results", train, "opensora_plan", 16) == []
    assert targets.generation_checkpoints(train, generate) == ["baseline", "epoch_16", "epoch_24", "epoch_36"]
    assert len(targets.generated_targets("results", train, generate)) == 12
    assert targets.generated_targets("results", train, generate)[0] == "results/generated/opensora_plan/baseline/A"
    assert targets.checkpoint_input("results", "m", "baseline") == [] and targets.checkpoint_input(
        "results", "m", "epoch_2"
    ) == ["results/checkpoints/m/epoch_2"]
