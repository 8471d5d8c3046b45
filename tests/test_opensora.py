"""The Open-Sora-Plan v1.3.1 backend: the exact commands and files, flag by flag, the checks made
before launching, and the relaunch protocol against stand-ins of its trainer and sampler that
behave as v1.3.1's do (one pass per launch, saves at multiples of --checkpointing_steps, resume
from the latest checkpoint-*, sample files named {method}_{index}_gs{g}_s{steps}.mp4)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tav_pipeline.backends.opensora import annotation, checks, commands, upstream
from tav_pipeline.backends.opensora import sample as sampler
from tav_pipeline.backends.opensora import train as trainer
from tav_pipeline.errors import ConfigError, MissingAssetError, RecordError
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import GenerateConfig, TrainConfig

# argparse flags of v1.3.1 (commit c41050ae): opensora/train/train_t2v_diffusers.py and
# opensora/utils/sample_utils.py (get_args). Every flag the pipeline passes must be one of them.
V131_TRAIN_FLAGS = set(
    "adam_beta1 adam_beta2 adam_epsilon adam_weight_decay adam_weight_decay_text_encoder ae ae_path allow_tf32 cache_dir cfg "
    "checkpointing_steps checkpoints_total_limit cogvideox_scheduler data dataloader_num_workers dataset drop_short_ratio "
    "ema_decay ema_start_step enable_profiling enable_tiling enable_tracker extra_save_mem force_resolution foreach_ema "
    "gradient_accumulation_steps gradient_checkpointing group_data guidance_scale hw_stride interpolation_scale_h "
    "interpolation_scale_t interpolation_scale_w learning_rate local_rank log_interval logging_dir logit_mean logit_std "
    "lr_scheduler lr_warmup_steps max_grad_norm max_height max_hxw max_train_steps max_width min_hxw mixed_precision "
    "mode_scale model model_max_length noise_offset num_frames num_sampling_steps num_train_epochs offload_ema "
    "ood_img_ratio optimizer output_dir prediction_type pretrained prodigy_beta3 prodigy_decouple prodigy_safeguard_warmup "
    "prodigy_use_bias_correction report_to rescale_betas_zero_snr resume_from_checkpoint rf_scheduler sample_rate seed "
    "skip_connection snr_gamma sp_size sparse1d sparse_n speed_factor text_encoder_name_1 text_encoder_name_2 "
    "train_batch_size train_fps train_sp_batch_size trained_data_global_step use_8bit_adam use_decord use_ema "
    "use_img_from_vid v1_5_scheduler vae_fp32 weighting_scheme".split()
)
V131_SAMPLE_FLAGS = set(
    "ae ae_path cache_dir caption_refiner compile conditional_pixel_values_path crop_for_hw device enable_tiling "
    "enhance_video fps guidance_scale height local_rank mask_type max_hxw max_sequence_length model_path model_type "
    "num_frames num_samples_per_prompt num_sampling_steps prediction_type refine_caption rescale_betas_zero_snr "
    "sample_method save_img_path save_memory seed sp text_encoder_name_1 text_encoder_name_2 text_prompt "
    "v1_5_scheduler version width world_size".split()
)

FAKE_TRAINER = r"""
import json, os, sys
args = sys.argv[1:]
launcher = globals().get("LAUNCHER", {})  # what `accelerate launch --config_file` was given
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args + [x for k, v in launcher.items() for x in (f"--launcher_{k}", str(v))]) + "\n")
def flag(name):
    return args[args.index(name) + 1]
per_step = int(flag("--train_batch_size")) * int(launcher.get("num_processes", 1))
out = flag("--output_dir")
root, annotation = open(flag("--data")).read().strip().split(",")
n = len(json.load(open(annotation)))
kept = n - int(os.environ.get("FAKE_DROP", "0"))
print(f"before filter: {n}, after filter: {kept}, use_ratio: 100.0%", flush=True)
done = [int(d.split("-")[1]) for d in os.listdir(out) if d.startswith("checkpoint")]
step = max(done) if done and flag("--resume_from_checkpoint") == "latest" else 0
every, limit = int(flag("--checkpointing_steps")), int(flag("--max_train_steps"))
for _ in range(kept // per_step):  # ONE pass over the data per launch, batch x processes clips a step
    if step >= limit:
        break
    step += 1
    if step % every == 0:
        d = os.path.join(out, f"checkpoint-{step}")
        for sub in ("model", "model_ema"):
            os.makedirs(os.path.join(d, sub))
            open(os.path.join(d, sub, "config.json"), "w").write("{}")
        open(os.path.join(d, "random_states_0.pkl"), "w").write("")
"""

FAKE_SAMPLER = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
def flag(name):
    return args[args.index(name) + 1]
out, method, steps, gs = flag("--save_img_path"), flag("--sample_method"), flag("--num_sampling_steps"), float(flag("--guidance_scale"))
os.makedirs(out, exist_ok=True)
prompts = [l.strip() for l in open(flag("--text_prompt")).readlines()]
for i, p in enumerate(prompts):
    open(os.path.join(out, f"{method}_{i}_gs{gs}_s{steps}.mp4"), "w").write(p)
open(os.path.join(out, f"{method}_gs{gs}_s{steps}.mp4"), "w").write("grid")
"""


def _stub(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name == "accelerate":  # `accelerate launch --config_file X SCRIPT ...`: read X, drop the launcher's part
        body = (
            "import json, sys, yaml\n"
            "acc = yaml.safe_load(open(sys.argv[3]))\n"
            "ds = json.load(open(acc['deepspeed_config']['deepspeed_config_file']))\n"
            "LAUNCHER = {'num_processes': acc['num_processes'], 'gpu_ids': acc.get('gpu_ids'),"
            " 'train_batch_size': ds['train_batch_size'], 'stage': ds['zero_optimization']['stage']}\n"
            "sys.argv = [sys.argv[0]] + sys.argv[5:]\n"
        ) + body
    path.write_text(f"#!{sys.executable}\n" + body)
    path.chmod(0o755)
    return path


def _item(
    folder: Path, name: str, *, seconds: float, fps: float = 24.0, size: tuple[int, int] = (640, 360), **over: Any
) -> dict[str, Any]:
    path = folder / f"{name}.mp4"
    path.write_bytes(b"")  # the planner only needs the file to exist
    d = {
        "path": path.name,
        "cap": f"Previous scene: {name}; Next scene: more",
        "resolution": {"height": size[1], "width": size[0]},
        "num_frames": int(seconds * fps),
        "fps": fps,
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


@pytest.fixture()
def data_txt(tmp_path: Path) -> Path:
    clips = tmp_path / "clips"
    clips.mkdir()
    items = [_item(clips, f"long{i}", seconds=10) for i in range(5)]  # 80 frames at 8 fps -> 33x256x256
    items += [_item(clips, "short_a", seconds=3.9), _item(clips, "short_b", seconds=3.9)]  # 31 -> 29-frame bucket of 2
    items += [_item(clips, "tiny", seconds=2.0)]  # 16 frames at 8 fps: too short
    items += [_item(clips, "wide", seconds=10, size=(768, 256))]  # h/w 1/3 < 1/2
    items += [_item(clips, "endless", seconds=80)]  # 640 frames at 8 fps > 5 x 33
    items += [_item(clips, "nocap", seconds=10, cap=None)]
    annotation = tmp_path / "tav_train.json"
    annotation.write_text(json.dumps(items))
    data = tmp_path / "data.txt"
    data.write_text(f"{clips},{annotation}\n")
    return data


@pytest.fixture()
def assets(tmp_path: Path) -> dict[str, Any]:
    """A stand-in checkout and weight folders, and the train: settings pointing at them."""
    repo = tmp_path / "Open-Sora-Plan"
    for rel in (upstream.TRAIN_SCRIPT, upstream.SAMPLE_FILE):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("# stand-in\n")
    weights = tmp_path / "weights"
    (weights / "any93x640x640").mkdir(parents=True)
    (weights / "any93x640x640" / "config.json").write_text(json.dumps({"sparse1d": True, "sparse_n": 4}))
    (weights / "vae").mkdir()
    (tmp_path / "cache" / "models--google--mt5-xxl").mkdir(parents=True)
    return {
        "opensora": {
            "repo": str(repo),
            "check_commit": False,
            "pretrained": str(weights / "any93x640x640"),
            "ae_path": str(weights / "vae"),
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": "opensora_plan",
    }


def _flags(argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out[argv[i]] = argv[i + 1]
                i += 2
                continue
            out[argv[i]] = True
        i += 1
    return out


def test_train_command_is_the_papers_flag_by_flag(tmp_path: Path) -> None:
    cfg = TrainConfig()
    argv = commands.train_argv(
        cfg,
        accelerate_yaml=tmp_path / "acc.yaml",
        data_txt=tmp_path / "data.txt",
        output_dir=tmp_path / "out",
        max_train_steps=7200,
        checkpointing_steps=450,
    )
    assert argv[:5] == [
        "accelerate",
        "launch",
        "--config_file",
        str((tmp_path / "acc.yaml").resolve()),
        "opensora/train/train_t2v_diffusers.py",
    ]
    flags = _flags(argv[5:])
    expected = {
        "--dataset": "t2v",
        "--data": str((tmp_path / "data.txt").resolve()),
        "--model": "OpenSoraT2V_v1_3-2B/122",
        "--pretrained": str(Path("resources/models/Open-Sora-Plan-v1.3.0/any93x640x640").resolve()),
        "--ae": "WFVAEModel_D8_4x8x8",
        "--ae_path": str(Path("resources/models/Open-Sora-Plan-v1.3.0/vae").resolve()),
        "--text_encoder_name_1": "google/mt5-xxl",
        "--cache_dir": str(Path("resources/cache_dir").resolve()),
        "--num_frames": "33",
        "--max_height": "256",
        "--max_width": "256",
        "--force_resolution": True,
        "--train_fps": "8",
        "--sample_rate": "1",
        "--drop_short_ratio": "0.0",
        "--speed_factor": "1.0",
        "--train_batch_size": "1",
        "--gradient_accumulation_steps": "1",
        "--dataloader_num_workers": "8",
        "--learning_rate": "1e-05",
        "--lr_scheduler": "constant",
        "--lr_warmup_steps": "0",
        "--adam_beta1": "0.9",
        "--adam_beta2": "0.999",
        "--adam_weight_decay": "0.01",
        "--adam_epsilon": "1e-15",
        "--max_grad_norm": "1.0",
        "--mixed_precision": "bf16",
        "--model_max_length": "512",
        "--cfg": "0.1",
        "--interpolation_scale_t": "1.0",
        "--interpolation_scale_h": "1.0",
        "--interpolation_scale_w": "1.0",
        "--prediction_type": "v_prediction",
        "--seed": "1234",
        "--output_dir": str((tmp_path / "out").resolve()),
        "--checkpointing_steps": "450",
        "--max_train_steps": "7200",
        "--resume_from_checkpoint": "latest",
        "--report_to": "tensorboard",
        "--snr_gamma": "5.0",
        "--use_ema": True,
        "--ema_decay": "0.9999",
        "--ema_start_step": "0",
        "--gradient_checkpointing": True,
        "--sparse1d": True,
        "--sparse_n": "4",
        "--rescale_betas_zero_snr": True,
        "--use_decord": True,
        "--allow_tf32": True,
    }
    assert flags == expected
    assert {f[2:] for f in flags} <= V131_TRAIN_FLAGS
    off = TrainConfig.from_dict({"opensora": {"rescale_betas_zero_snr": False, "extra_args": ["--group_data"]}})
    argv = commands.train_argv(
        off, accelerate_yaml="a", data_txt="d", output_dir="o", max_train_steps=1, checkpointing_steps=1
    )
    assert "--rescale_betas_zero_snr" not in argv and argv[-1] == "--group_data"


def test_sample_command_flag_by_flag(tmp_path: Path) -> None:
    argv = commands.sample_argv(
        TrainConfig(),
        GenerateConfig(),
        model_path=tmp_path / "epoch_16" / "model_ema",
        prompt_file=tmp_path / "C.txt",
        save_dir=tmp_path / "s",
        port=29555,
    )
    assert argv[:8] == ["torchrun", "--nnodes", "1", "--nproc_per_node", "1", "--master_port", "29555", "-m"]
    assert argv[8] == "opensora.sample.sample"
    assert _flags(argv[9:]) == {
        "--model_path": str((tmp_path / "epoch_16" / "model_ema").resolve()),
        "--version": "v1_3",
        "--model_type": "t2v",
        "--num_frames": "33",
        "--height": "256",
        "--width": "256",
        "--fps": "8",
        "--cache_dir": str(Path("resources/cache_dir").resolve()),
        "--text_encoder_name_1": "google/mt5-xxl",
        "--text_prompt": str((tmp_path / "C.txt").resolve()),
        "--ae": "WFVAEModel_D8_4x8x8",
        "--ae_path": str(Path("resources/models/Open-Sora-Plan-v1.3.0/vae").resolve()),
        "--save_img_path": str((tmp_path / "s").resolve()),
        "--guidance_scale": "7.5",
        "--num_sampling_steps": "100",
        "--max_sequence_length": "512",
        "--sample_method": "EulerAncestralDiscrete",
        "--seed": "42",
        "--num_samples_per_prompt": "1",
        "--prediction_type": "v_prediction",
        "--rescale_betas_zero_snr": True,
    }
    assert {f[2:] for f in _flags(argv[9:])} <= V131_SAMPLE_FLAGS


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"opensora": {"sparse_n": 2}}, "sparse_n"),
        ({"opensora": {"text_encoder_name_1": "google/mt5-xl"}}, "text_encoder_name_1"),
        ({"opensora": {"ae": "WFVAEModel_D8_4x4x4"}}, "train.opensora.ae"),
        ({"fps": 7.5}, "train.fps"),
        ({"min_frames": 33}, "min_frames"),
        ({"height": 264}, "train.height"),
    ],
)
def test_settings_open_sora_plan_would_crash_on_are_refused(over: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        checks.check_settings(TrainConfig.from_dict(over))


def test_missing_assets_name_the_rule_that_fetches_them(tmp_path: Path, assets: dict[str, Any]) -> None:
    cfg = TrainConfig.from_dict(assets)
    checks.check_checkout(cfg)
    checks.check_weights(cfg)
    with pytest.raises(MissingAssetError, match="fetch_opensora'"):
        checks.check_checkout(TrainConfig.from_dict({"opensora": {"repo": str(tmp_path / "nowhere")}}))
    pretrained_file = tmp_path / "model.safetensors"
    pretrained_file.write_bytes(b"")
    with pytest.raises(ConfigError, match="folder"):
        checks.check_weights(
            TrainConfig.from_dict({"opensora": {**assets["opensora"], "pretrained": str(pretrained_file)}})
        )
    with pytest.raises(MissingAssetError, match="fetch_opensora_weights"):
        checks.check_weights(TrainConfig.from_dict({"opensora": {**assets["opensora"], "cache_dir": str(tmp_path)}}))


def test_checkout_commit_is_checked(tmp_path: Path, assets: dict[str, Any]) -> None:
    repo = Path(assets["opensora"]["repo"])
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("no git")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "stand-in"], check=True)
    with pytest.raises(ConfigError, match="not c41050ae"):
        checks.check_checkout(TrainConfig.from_dict({"opensora": {**assets["opensora"], "check_commit": True}}))
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    checks.check_checkout(
        TrainConfig.from_dict({"opensora": {**assets["opensora"], "check_commit": True, "commit": head}})
    )


def test_annotation_plan_repeats_the_trainers_filter(data_txt: Path) -> None:
    plan = annotation.plan_annotation(annotation.read_data_txt(data_txt), TrainConfig())
    reasons = {Path(r["path"]).stem: r["reason"] for r in plan.rejected}
    assert reasons == {
        "short_a": "small_bucket",
        "short_b": "small_bucket",
        "tiny": "too_short",
        "wide": "aspect_ratio",
        "endless": "too_long",
        "nocap": "no_caption",
    }
    assert plan.usable == 5 and plan.buckets == {"33x256x256": 5}
    assert all(Path(i["path"]).is_absolute() for i in plan.items)
    with pytest.raises(ConfigError, match="unusable_clips"):
        annotation.plan_annotation(
            annotation.read_data_txt(data_txt), TrainConfig.from_dict({"opensora": {"unusable_clips": "error"}})
        )
    # drop_short_ratio 1.0 (the trainer's own default) drops every clip shorter than 33 frames
    assert (
        annotation.plan_annotation(annotation.read_data_txt(data_txt), TrainConfig.from_dict({"drop_short_ratio": 1.0})).usable == 5
    )


def test_clips_smaller_than_the_training_size_are_reported(data_txt: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = annotation.read_data_txt(data_txt)
    with caplog.at_level(logging.WARNING, logger=annotation.__name__):
        annotation.plan_annotation(rows, TrainConfig())
        assert "upscaled" not in caplog.text
        annotation.plan_annotation(rows, TrainConfig.from_dict({"height": 512, "width": 512}))
    assert "7 clip(s) are smaller than 512x512 and will be upscaled" in caplog.text  # the long and short ones


def test_items_without_fps_are_refused(tmp_path: Path, data_txt: Path) -> None:
    root, annotation_json = annotation.read_data_txt(data_txt)[0]
    items = json.loads(Path(annotation_json).read_text())
    del items[0]["fps"]
    Path(annotation_json).write_text(json.dumps(items))
    with pytest.raises(RecordError, match="'fps'") as info:
        annotation.plan_annotation([(root, annotation_json)], TrainConfig())
    assert not isinstance(info.value, ConfigError)  # a fault of the file build_tav wrote
    bad = tmp_path / "data.txt"
    bad.write_text("only-one-field\n")
    with pytest.raises(RecordError, match="line 1: expected 'VIDEO_ROOT,ANNOTATION_JSON'"):
        annotation.read_data_txt(bad)


def test_launch_plans_make_every_epoch_end_a_save() -> None:
    job = ckpt.EpochJob(16, 24, 450)
    per_epoch = trainer.plan_launches(job, 450, "per_epoch")
    assert [(launch.max_train_steps, launch.checkpointing_steps, launch.repeat) for launch in per_epoch] == [
        (k * 450, 450, 1) for k in range(17, 25)
    ]
    (repeat,) = trainer.plan_launches(job, 450, "repeat")
    assert (repeat.max_train_steps, repeat.checkpointing_steps, repeat.repeat) == (10800, 10800, 8)
    # epoch_steps: 100 (the paper's literal "100 steps"): one pass of 450 clips covers an epoch
    assert [
        (launch.max_train_steps, launch.repeat)
        for launch in trainer.plan_launches(ckpt.EpochJob(0, 2, 100), 450, "per_epoch")
    ] == [(100, 1), (200, 1)]
    # 8 GPUs x batch 1: 100 steps take 800 clips, two copies of the 450
    (eight,) = trainer.plan_launches(ckpt.EpochJob(0, 1, 100), 450, "per_epoch", global_batch=8)
    assert (eight.max_train_steps, eight.repeat) == (100, 2)


@pytest.mark.parametrize("relaunch", ["per_epoch", "repeat"])
def test_training_relaunches_until_each_epoch_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_txt: Path, assets: dict[str, Any], relaunch: str
) -> None:
    _stub(tmp_path / "bin", "accelerate", FAKE_TRAINER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    train = {**assets, "epochs": [1, 3], "opensora": {**assets["opensora"], "relaunch": relaunch}}
    first = trainer.train_opensora_step(data_txt, None, tmp_path / "ck" / "epoch_1", tmp_path / "work1", train, 1)
    third = trainer.train_opensora_step(
        data_txt, tmp_path / "ck" / "epoch_1", tmp_path / "ck" / "epoch_3", tmp_path / "work3", train, 3
    )
    assert (first.global_step, third.global_step, third.steps_per_epoch) == (5, 15, 5)
    calls = [_flags(json.loads(line)) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    if relaunch == "per_epoch":
        assert [(c["--max_train_steps"], c["--checkpointing_steps"]) for c in calls] == [
            ("5", "5"),
            ("10", "5"),
            ("15", "5"),
        ]
    else:
        assert [(c["--max_train_steps"], c["--checkpointing_steps"]) for c in calls] == [("5", "5"), ("15", "15")]
    for c in calls:
        assert c["--resume_from_checkpoint"] == "latest" and c["--sparse_n"] == "4" and c["--cfg"] == "0.1"
    final = tmp_path / "ck" / "epoch_3"
    assert (final / "model_ema" / "config.json").is_file() and ckpt.TrainState.read(final).epoch == 3
    assert json.loads((final / "opensora_plan.json").read_text())["usable"] == 5
    assert not (tmp_path / "work3").exists() and (tmp_path / "ck" / "epoch_1" / "model" / "config.json").is_file()


def test_training_on_n_gpus_launches_n_processes_with_the_global_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assets: dict[str, Any]
) -> None:
    import torch

    clips = tmp_path / "clips"
    clips.mkdir()
    items = [_item(clips, f"long{i}", seconds=10) for i in range(9)]  # one 33x256x256 bucket
    (tmp_path / "tav_train.json").write_text(json.dumps(items))
    data_txt = tmp_path / "data.txt"
    data_txt.write_text(f"{clips},{tmp_path / 'tav_train.json'}\n")
    _stub(tmp_path / "bin", "accelerate", FAKE_TRAINER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    train = {**assets, "epochs": [1, 2], "num_gpus": 2, "lr_scaling": "linear"}

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="launches 2 process.*sees 1 GPU"):
        trainer.train_opensora_step(data_txt, None, tmp_path / "ck" / "epoch_1", tmp_path / "work1", train, 1)

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    first = trainer.train_opensora_step(data_txt, None, tmp_path / "ck" / "epoch_1", tmp_path / "work1", train, 1)
    # 9 clips, 2 processes x batch 1: 4 steps make an epoch (one pass; the odd clip waits)
    assert (first.global_step, first.steps_per_epoch, first.num_processes, first.learning_rate) == (4, 4, 2, 2e-5)
    (call,) = [_flags(json.loads(line)) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert (call["--launcher_num_processes"], call["--launcher_gpu_ids"], call["--launcher_train_batch_size"]) == (
        "2",
        "all",
        "2",
    )
    assert (call["--launcher_stage"], call["--train_batch_size"], call["--learning_rate"]) == ("2", "1", "2e-05")
    assert (call["--max_train_steps"], call["--checkpointing_steps"]) == ("4", "4")

    # ZeRO's optimizer partitions resume only with as many processes
    with pytest.raises(ConfigError, match="trained by 2 process.*train.num_gpus: 2"):
        trainer.train_opensora_step(
            data_txt, tmp_path / "ck" / "epoch_1", tmp_path / "ck" / "epoch_2", tmp_path / "work2",
            {**train, "num_gpus": 1}, 2,
        )
    second = trainer.train_opensora_step(
        data_txt, tmp_path / "ck" / "epoch_1", tmp_path / "ck" / "epoch_2", tmp_path / "work2", train, 2
    )
    assert (second.global_step, second.num_processes) == (8, 2)


def test_a_different_count_from_the_trainer_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_txt: Path, assets: dict[str, Any]
) -> None:
    _stub(tmp_path / "bin", "accelerate", FAKE_TRAINER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_DROP", "1")
    with pytest.raises(ConfigError, match="kept 4 of 5"):
        trainer.train_opensora_step(
            data_txt, None, tmp_path / "ck" / "epoch_1", tmp_path / "work", {**assets, "epochs": [1]}, 1
        )


def test_sampling_maps_output_names_back_to_prompt_indices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assets: dict[str, Any]
) -> None:
    _stub(tmp_path / "bin", "torchrun", FAKE_SAMPLER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    prompts = {"A": tmp_path / "A.txt", "C": tmp_path / "C.txt"}
    prompts["A"].write_text("a dog\na cat\na car\n")
    prompts["C"].write_text("Previous scene: a dog; Next scene: a cat\n")
    outs = {g: tmp_path / "generated" / "opensora_plan" / "baseline" / g for g in prompts}
    gen = {"opensora": {"guidance_scale": 7}}  # written by the sampler as gs7.0
    sampler.sample_opensora_step(None, prompts, outs, tmp_path / "work", {**assets}, gen)
    assert [p.read_text() for p in sorted(outs["A"].glob("*.mp4"))] == ["a dog", "a cat", "a car"]
    assert json.loads((outs["C"] / "prompts.json").read_text())["prompts"] == [
        "Previous scene: a dog; Next scene: a cat"
    ]
    calls = [_flags(json.loads(line)) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls[0]["--model_path"] == str(Path(assets["opensora"]["pretrained"]).resolve())
    save = tmp_path / "s"
    save.mkdir()
    (save / "EulerAncestralDiscrete_0_gs7.5_s100.mp4").write_text("x")
    with pytest.raises(MissingAssetError, match=r"prompt\(s\) \[1\]"):
        sampler.collect_samples(save, tmp_path / "o", 2, GenerateConfig())
