"""The diffusers trainer on the tiny CogVideoX, for real: EMA from step 0, the min-SNR weights it
logs, and resumption giving exactly what an uninterrupted run gives."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from _train_data import tiny_train  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from tav_pipeline.backends.diffusers.loop import train_model_step  # noqa: E402
from tav_pipeline.errors import ConfigError  # noqa: E402
from tav_pipeline.train import checkpoint as ckpt  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def _train(tmp: Path, tav: Path, lat: Path, model: Path, epochs: list[int], **over: object) -> dict[int, Path]:
    train = tiny_train(model, epochs=epochs, **over)
    out, previous = {}, None
    for e in sorted(epochs):
        out[e] = tmp / f"epoch_{e}"
        train_model_step(
            tav, lat, previous, out[e], tmp / f"work_{e}", train, e, launch=False, losses_tsv=tmp / f"losses_{e}.tsv"
        )
        previous = out[e]
    return out


@pytest.fixture(scope="module")
def two_jobs(
    tmp_path_factory: pytest.TempPathFactory, tav_json: Path, latents: Path, tiny_model: Path
) -> dict[int, Path]:
    """Epoch 1 and epoch 2 (one step each), two jobs: the second resumes from the first."""
    torch.set_num_threads(1)
    return _train(tmp_path_factory.mktemp("two"), tav_json, latents, tiny_model, [1, 2], epoch_steps=1)


def test_checkpoint_layout_and_state(two_jobs: dict[int, Path]) -> None:
    second = two_jobs[2]
    for sub in ("model", "model_ema"):
        assert (second / sub / "config.json").is_file()
    state = ckpt.TrainState.read(second)
    assert (state.epoch, state.global_step, state.steps_per_epoch, state.usable_clips) == (2, 2, 1, 4)
    assert state.resumed_from == str(two_jobs[1])
    rows = list(csv.DictReader((second / "losses.tsv").open(), delimiter="\t"))
    assert [int(r["step"]) for r in rows] == [1, 2]  # the loss history carries over


def test_ema_starts_at_step_zero_and_resumes_its_decay(two_jobs: dict[int, Path]) -> None:
    w1, e1 = _weights(two_jobs[1] / "model"), _weights(two_jobs[1] / "model_ema")
    w2, e2 = _weights(two_jobs[2] / "model"), _weights(two_jobs[2] / "model_ema")
    # EMAModel's decay at its first step is 0: the EMA equals the weights after step 1
    assert all(torch.equal(w1[k], e1[k]) for k in w1)
    # step 2: decay min((1 + 1) / (10 + 1), 0.9999) = 2/11, with the EMA state restored by the resumed job
    d = 2.0 / 11.0
    changed = 0
    for k in w2:
        assert torch.allclose(e2[k], d * e1[k] + (1 - d) * w2[k], atol=1e-6), k
        changed += int(not torch.equal(w2[k], w1[k]))
    assert changed > 0  # the optimizer did move the weights


def test_logged_weights_are_min_snr_5(two_jobs: dict[int, Path], tiny_model: Path) -> None:
    from diffusers import CogVideoXDDIMScheduler

    scheduler = CogVideoXDDIMScheduler.from_pretrained(str(tiny_model), subfolder="scheduler")
    for row in csv.DictReader((two_jobs[2] / "losses.tsv").open(), delimiter="\t"):
        a = float(scheduler.alphas_cumprod[int(row["timestep"])])
        snr = a / (1 - a)
        assert float(row["weight"]) == pytest.approx(min(snr, 5.0) / (snr + 1), rel=1e-4)
        assert float(row["lr"]) == pytest.approx(1e-5)


def test_resuming_gives_what_one_uninterrupted_job_gives(
    two_jobs: dict[int, Path], tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path
) -> None:
    one = _train(tmp_path, tav_json, latents, tiny_model, [2], epoch_steps=1)[2]
    assert ckpt.TrainState.read(one).global_step == 2
    for sub in ("model", "model_ema"):
        a, b = _weights(one / sub), _weights(two_jobs[2] / sub)
        assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a), sub
    rows_one = list(csv.DictReader((one / "losses.tsv").open(), delimiter="\t"))
    rows_two = list(csv.DictReader((two_jobs[2] / "losses.tsv").open(), delimiter="\t"))
    assert [(r["timestep"], r["clip"]) for r in rows_one] == [(r["timestep"], r["clip"]) for r in rows_two]


def test_a_failed_job_resumes_mid_epoch_from_its_leftover(
    tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path
) -> None:
    import dataclasses

    from tav_pipeline.backends.diffusers.loop import plan_job, run_training
    from tav_pipeline.train.config import TrainConfig

    cfg = TrainConfig.from_dict(tiny_train(tiny_model, epochs=[1]))
    work = tmp_path / "work"
    plan = plan_job(tav_json, latents, None, work, cfg, 1)
    assert (plan.resume_step, plan.job.end_step) == (0, 4)
    run_training(dataclasses.replace(plan, steps_per_epoch=2))  # saves step 2, then "dies"
    (work / "checkpoint-3").mkdir()  # a half-written save is never picked
    again = plan_job(tav_json, latents, None, work, cfg, 1)
    assert (again.resume_step, Path(again.resume_dir).name) == (2, "checkpoint-2")
    resumed = run_training(again)
    fresh = run_training(plan_job(tav_json, latents, None, tmp_path / "fresh", cfg, 1))
    for sub in ("model", "model_ema"):
        a, b = _weights(resumed / sub), _weights(fresh / sub)
        assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a), sub


@pytest.mark.slow
def test_accelerate_launch_with_deepspeed_zero2_on_cpu(
    tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path
) -> None:
    """The rule's path: ``accelerate launch`` + single-process DeepSpeed ZeRO-2 (here on the CPU)."""
    pytest.importorskip("deepspeed")
    train = tiny_train(tiny_model, epochs=[1], distributed="deepspeed")
    state = train_model_step(
        tav_json,
        latents,
        None,
        tmp_path / "epoch_1",
        tmp_path / "work",
        train,
        1,
        threads=1,
        losses_tsv=tmp_path / "losses.tsv",
    )
    assert state.global_step == 4
    assert (tmp_path / "epoch_1" / "pytorch_model").is_dir()  # DeepSpeed's engine checkpoint (optimizer partitions)
    assert (tmp_path / "epoch_1" / "model_ema" / "config.json").is_file() and (tmp_path / "losses.tsv").is_file()


@pytest.mark.slow
def test_two_processes_train_as_one_process_with_twice_the_batch(
    tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path
) -> None:
    """``train.num_gpus: 2`` on the CPU: two DeepSpeed ZeRO-2 processes (gloo) through the rule's
    ``accelerate launch``. Each process takes its half of the global batch and ZeRO-2 averages the
    gradients and steps its half of the optimizer state, so 2 processes x batch 1 must train as
    1 process x batch 2: the same samples, losses and weights."""
    pytest.importorskip("deepspeed")
    def run(processes: int, batch: int, epoch: int, previous: Path | None, out: Path) -> ckpt.TrainState:
        train = tiny_train(tiny_model, epochs=[1, 2], distributed="deepspeed", num_gpus=processes, batch_size=batch)
        return train_model_step(
            tav_json, latents, previous, out / f"epoch_{epoch}", out / f"work_{epoch}", train, epoch,
            threads=2, losses_tsv=out / f"losses_{epoch}.tsv",
        )

    two = run(2, 1, 1, None, tmp_path / "two")
    one = run(1, 2, 1, None, tmp_path / "one")
    # 4 train clips, global batch 2: an epoch is 2 steps
    assert (two.global_step, two.steps_per_epoch, two.num_processes) == (2, 2, 2)
    assert (one.global_step, one.steps_per_epoch, one.num_processes) == (2, 2, 1)
    partitions = sorted(p.name for p in (tmp_path / "two" / "epoch_1" / "pytorch_model").glob("zero_pp_rank_*"))
    assert partitions == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]

    rows_two = list(csv.DictReader((tmp_path / "two" / "losses_1.tsv").open(), delimiter="\t"))
    rows_one = list(csv.DictReader((tmp_path / "one" / "losses_1.tsv").open(), delimiter="\t"))
    assert [(r["timestep"], r["clip"], r["dropped"]) for r in rows_two] == [
        (r["timestep"], r["clip"], r["dropped"]) for r in rows_one
    ]
    assert [float(r["loss"]) for r in rows_two] == pytest.approx([float(r["loss"]) for r in rows_one], rel=1e-5)
    for sub in ("model", "model_ema"):
        a, b = _weights(tmp_path / "two" / "epoch_1" / sub), _weights(tmp_path / "one" / "epoch_1" / sub)
        # The key norm's bias shifts every logit of a query alike, so softmax makes its gradient
        # exactly zero; Adam then steps it by +-lr on the sign of float noise. Every other weight agrees.
        differ = [k for k in a if not torch.allclose(a[k], b[k], atol=1e-6, rtol=0)]
        assert all(k.endswith("attn1.norm_k.bias") for k in differ), (sub, differ)

    # the next epoch resumes with as many processes; another count is refused before launching
    with pytest.raises(ConfigError, match="trained by 2 process"):
        run(1, 2, 2, tmp_path / "two" / "epoch_1", tmp_path / "two")
    second = run(2, 1, 2, tmp_path / "two" / "epoch_1", tmp_path / "two")
    assert (second.global_step, second.num_processes, second.epoch) == (4, 2, 2)
    rows = list(csv.DictReader((tmp_path / "two" / "losses_2.tsv").open(), delimiter="\t"))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]


def test_several_processes_need_the_launcher(tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path) -> None:
    train = tiny_train(tiny_model, epochs=[1], distributed="deepspeed", num_gpus=2)
    with pytest.raises(ConfigError, match="launcher"):
        train_model_step(tav_json, latents, None, tmp_path / "e1", tmp_path / "w", train, 1, launch=False)


def test_checkpointing_on_off_and_auto_give_the_same_loss_per_step(
    tmp_path: Path, tav_json: Path, latents: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Gradient checkpointing recomputes activations and changes no number: the tiny model trains the
    same four steps with it on, off and ``auto`` (off on a CPU, and logged so)."""
    losses = {}
    for setting in (True, False, "auto"):
        caplog.clear()
        with caplog.at_level("INFO", logger="tav_pipeline.backends.diffusers.loop"):
            out = _train(tmp_path / str(setting), tav_json, latents, tiny_model, [1], gradient_checkpointing=setting)[1]
        decisions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gradient checkpointing")]
        assert decisions == [f"gradient checkpointing {'on' if setting is True else 'off'} ("
                             + ("auto on a CPU: memory is not the limit there)" if setting == "auto"
                                else "train.gradient_checkpointing is set)")]
        losses[setting] = [float(r["loss"]) for r in csv.DictReader((out / "losses.tsv").open(), delimiter="\t")]
    assert len(losses[True]) == 4 and len(set(losses[True])) == 4
    assert losses[False] == pytest.approx(losses[True], rel=1e-5, abs=1e-7)
    assert losses["auto"] == losses[False]


def test_auto_checkpointing_decides_from_the_probe_and_the_state_estimate() -> None:
    from tav_pipeline.backends.diffusers.loop import checkpointing_decision

    gib = 2**30
    h200, small = 139 * gib, 40 * gib
    paper = dict(parameters=1_693_783_872, deepspeed=True, processes=1, ema=True)  # CogVideoX-2B, ZeRO-2, EMA
    # ZeRO-2 in one process: 24 B a parameter (37.9 GiB) + a 6 GiB step fits an H200 ...
    on, why = checkpointing_decision("auto", device_type="cuda", probe_bytes=6 * gib, total_bytes=h200, **paper)
    assert not on and "estimated 43.9 GiB" in why and "fits in" in why
    # ... not a 40 GiB card, where two processes halve the sharded 16 B and it fits again
    assert checkpointing_decision("auto", device_type="cuda", probe_bytes=6 * gib, total_bytes=small, **paper)[0]
    two = dict(paper, processes=2)
    assert not checkpointing_decision("auto", device_type="cuda", probe_bytes=2 * gib, total_bytes=small, **two)[0]
    # without EMA the plain path needs 16 B a parameter instead of 20
    plain = dict(paper, deepspeed=False, ema=False)
    assert not checkpointing_decision("auto", device_type="cuda", probe_bytes=6 * gib, total_bytes=small, **plain)[0]
    assert checkpointing_decision("auto", device_type="cuda", probe_bytes=6 * gib, total_bytes=small,
                                  **dict(plain, ema=True))[0]
    # a probe that ran out of memory means on; a CPU means off; true/false are taken as set
    assert checkpointing_decision("auto", device_type="cuda", probe_bytes=None, total_bytes=h200, **paper)[0]
    assert not checkpointing_decision("auto", device_type="cpu", probe_bytes=0, total_bytes=0, **paper)[0]
    assert checkpointing_decision(True, device_type="cpu", probe_bytes=0, total_bytes=0, **paper)[0]
    assert not checkpointing_decision(False, device_type="cuda", probe_bytes=None, total_bytes=h200, **paper)[0]


def test_gradient_checkpointing_takes_true_false_or_auto(tiny_model: Path) -> None:
    from tav_pipeline.train.config import TrainConfig

    assert TrainConfig.from_dict(tiny_train(tiny_model, gradient_checkpointing="auto")).gradient_checkpointing == "auto"
    with pytest.raises(ConfigError, match="train.gradient_checkpointing"):
        TrainConfig.from_dict(tiny_train(tiny_model, gradient_checkpointing="sometimes"))
