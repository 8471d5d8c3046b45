"""Each GPU job gets its own devices (tav_pipeline.gpus), checked on a CPU machine with fake GPU
lists: CUDA_VISIBLE_DEVICES, or an nvidia-smi on PATH that prints a listing. The claims are real
flock claims by real concurrent processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tav_pipeline import gpus
from tav_pipeline.train.accelerate_config import write_launch_files
from tav_pipeline.train.config import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"

# hold COUNT devices until RELEASE exists; write the CUDA_VISIBLE_DEVICES it got to OUT
HOLDER = """
import logging, os, sys, time
from pathlib import Path
from tav_pipeline import gpus
logging.basicConfig(level=logging.INFO)
count, out, release = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
gpus.claim(count, rule=out.stem, poll_s=0.05)
Path(f"{out}.part").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
os.replace(f"{out}.part", out)
while not release.exists():
    time.sleep(0.02)
"""

SMI_LISTING = """GPU 0: NVIDIA H200 (UUID: GPU-0b6c1e52-aaaa-bbbb-cccc-000000000000)
GPU 1: NVIDIA H200 (UUID: GPU-0b6c1e52-aaaa-bbbb-cccc-000000000001)
"""


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without scheduler or TAV_GPU_* settings, with a private lock folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TAV_GPU_", "CUDA_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env[gpus.LOCK_DIR_VAR] = str(tmp_path / "locks")
    env.update(extra)
    return env


def _fake_smi(folder: Path, listing: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "listing.txt").write_text(listing)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 2\ncat '{folder / 'listing.txt'}'\n")
    smi.chmod(0o755)
    return folder


class Holders:
    """Processes that each claim devices and hold them until released."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir, self.env = tmp_path, env
        self.release = tmp_path / "release"
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, count: int, **extra: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", HOLDER, str(count), str(self.dir / f"{name}.out"), str(self.release)]
        proc = subprocess.Popen(argv, env={**self.env, **extra}, stderr=subprocess.PIPE, text=True)
        self.procs[name] = proc
        return proc

    def got(self, name: str, timeout: float = 60.0) -> list[str]:
        out = self.dir / f"{name}.out"
        end = time.monotonic() + timeout
        while not out.exists():
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < end, f"{name} got no device in {timeout} s"
            time.sleep(0.02)
        return out.read_text().split(",")

    def stop(self) -> None:
        self.release.touch()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[Holders]:
    h = Holders(tmp_path, _clean_env(tmp_path, CUDA_VISIBLE_DEVICES="0,1,2,3"))
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _released() -> Iterator[None]:
    yield
    gpus.release()


def test_concurrent_jobs_get_disjoint_devices_wait_for_a_free_one_and_inherit_a_crashed_ones(
    holders: Holders,
) -> None:
    for name, count in (("two", 2), ("one_a", 1), ("one_b", 1)):
        holders.start(name, count)
    got = {name: holders.got(name) for name in ("two", "one_a", "one_b")}
    assert [len(got[n]) for n in ("two", "one_a", "one_b")] == [2, 1, 1]
    assert sorted(d for devices in got.values() for d in devices) == ["0", "1", "2", "3"]

    # all four taken: a bounded wait ends in an error that says who holds them
    late = holders.start("late", 1, TAV_GPU_WAIT_S="0.3")
    assert late.wait(timeout=30) != 0
    err = late.stderr.read() if late.stderr else ""
    assert "GpuClaimError: rule late: no 1 free GPU(s) of 0,1,2,3 after 0.3 s (TAV_GPU_WAIT_S)" in err
    assert f"{got['one_a'][0]}: rule one_a pid {holders.procs['one_a'].pid}" in err

    # an unbounded claim waits, and takes the device of a holder that dies without cleaning up
    waiter = holders.start("waiter", 1)
    time.sleep(0.5)
    assert waiter.poll() is None and not (holders.dir / "waiter.out").exists()
    holders.procs["one_b"].send_signal(signal.SIGKILL)
    assert holders.got("waiter") == got["one_b"]


def test_a_claim_takes_all_its_devices_or_none(holders: Holders) -> None:
    holders.start("three", 3)
    assert len(holders.got("three")) == 3
    # two wanted, one free: the job takes none of them, so a one-device job still finds it
    pair = holders.start("pair", 2)
    time.sleep(0.3)
    assert pair.poll() is None
    holders.start("single", 1)
    (free,) = holders.got("single")
    assert free not in holders.got("three")


def test_jobs_per_gpu_lets_that_many_jobs_share_a_device(tmp_path: Path) -> None:
    h = Holders(tmp_path, _clean_env(tmp_path, CUDA_VISIBLE_DEVICES="0,1", TAV_GPU_JOBS_PER_GPU="2"))
    try:
        for i in range(4):
            h.start(f"job{i}", 1)
        assert Counter(h.got(f"job{i}")[0] for i in range(4)) == {"0": 2, "1": 2}
        assert h.start("fifth", 1, TAV_GPU_WAIT_S="0.2").wait(timeout=30) != 0
    finally:
        h.stop()


def test_devices_come_from_nvidia_smi_when_nothing_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _fake_smi(tmp_path / "bin", SMI_LISTING)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env: dict[str, str] = {"PATH": os.environ["PATH"], gpus.LOCK_DIR_VAR: str(tmp_path / "l")}
    assert gpus.claim(1, rule="caption_scenes", environ=env) == ["0"]
    # the indices are nvidia-smi's: CUDA counts in the same (PCI bus) order
    assert (env["CUDA_VISIBLE_DEVICES"], env["CUDA_DEVICE_ORDER"]) == ("0", "PCI_BUS_ID")
    # a second process finds GPU 0 taken
    h = Holders(tmp_path, {**_clean_env(tmp_path, PATH=env["PATH"]), gpus.LOCK_DIR_VAR: str(tmp_path / "l")})
    try:
        h.start("other", 1)
        assert h.got("other") == ["1"]
    finally:
        h.stop()


def test_nvidia_smi_listing_names_gpus_by_index_and_mig_instances_by_uuid() -> None:
    listing = (
        "GPU 0: NVIDIA H200 (UUID: GPU-aaaa)\n"
        "GPU 1: NVIDIA H200 (UUID: GPU-bbbb)\n"
        "  MIG 3g.71gb     Device  0: (UUID: MIG-1111-2222)\n"
        "  MIG 3g.71gb     Device  1: (UUID: MIG-3333-4444)\n"
        "GPU 2: NVIDIA H200 (UUID: GPU-cccc)\n"
    )
    assert gpus.parse_nvidia_smi(listing) == ["0", "MIG-1111-2222", "MIG-3333-4444", "2"]
    assert gpus.parse_nvidia_smi("") == []
    assert gpus.parse_visible(" 2, 3,,GPU-aa ") == ["2", "3", "GPU-aa"]
    assert gpus.parse_visible("1,-1,2") == ["1"] and gpus.parse_visible("") == []


def test_slurm_and_assign_off_keep_the_given_devices(tmp_path: Path) -> None:
    locks = str(tmp_path / "locks")
    slurm = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "123", gpus.LOCK_DIR_VAR: locks}
    assert gpus.claim(1, rule="train_model", environ=slurm) is None
    assert slurm["CUDA_VISIBLE_DEVICES"] == "0" and not Path(locks).exists()
    off = {"CUDA_VISIBLE_DEVICES": "4,5", "TAV_GPU_ASSIGN": "off", gpus.LOCK_DIR_VAR: locks}
    assert gpus.claim(1, rule="train_model", environ=off) is None and off["CUDA_VISIBLE_DEVICES"] == "4,5"
    # one salloc running a local Snakemake over its GPUs: TAV_GPU_ASSIGN=on splits them
    on = {"CUDA_VISIBLE_DEVICES": "4,5", "SLURM_JOB_ID": "123", "TAV_GPU_ASSIGN": "on", gpus.LOCK_DIR_VAR: locks}
    assert gpus.claim(1, rule="train_model", environ=on) == ["4"] and on["CUDA_VISIBLE_DEVICES"] == "4"
    assert "CUDA_DEVICE_ORDER" not in on  # the given names are kept, in the caller's order


def test_no_gpu_or_no_request_leaves_the_job_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi: a CPU machine
    env: dict[str, str] = {gpus.LOCK_DIR_VAR: str(tmp_path / "locks")}
    assert gpus.claim(2, rule="train_model", environ=env) is None and "CUDA_VISIBLE_DEVICES" not in env
    hidden = {"CUDA_VISIBLE_DEVICES": "", gpus.LOCK_DIR_VAR: str(tmp_path / "locks")}
    assert gpus.claim(1, rule="generate_videos", environ=hidden) is None and hidden["CUDA_VISIBLE_DEVICES"] == ""
    zero = {"CUDA_VISIBLE_DEVICES": "0,1", gpus.LOCK_DIR_VAR: str(tmp_path / "locks")}
    assert gpus.claim(0, rule="generate_videos", environ=zero) is None and zero["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_more_gpus_than_the_machine_has_is_an_error_naming_the_resource(tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1", gpus.LOCK_DIR_VAR: str(tmp_path / "locks")}
    with pytest.raises(gpus.GpuClaimError, match=r"rule train_model asks for 8 GPU\(s\) \(resources: gpu=8; .*train.num_gpus\) but only 2 are visible \(CUDA_VISIBLE_DEVICES=0,1\)"):
        gpus.claim(8, rule="train_model", environ=env)
    with pytest.raises(gpus.GpuClaimError, match="TAV_GPU_ASSIGN='maybe'"):
        gpus.claim(1, environ={**env, "TAV_GPU_ASSIGN": "maybe"})
    with pytest.raises(gpus.GpuClaimError, match="TAV_GPU_JOBS_PER_GPU='0'"):
        gpus.claim(1, environ={**env, "TAV_GPU_JOBS_PER_GPU": "0"})


def test_a_second_claim_returns_the_first_and_release_gives_them_back(tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1", gpus.LOCK_DIR_VAR: str(tmp_path / "locks")}
    assert gpus.claim(1, environ=env) == ["0"]
    assert gpus.claim(1, environ=env) == ["0"]
    assert gpus.holders(["0", "1"], tmp_path / "locks") == [f"0: rule job pid {os.getpid()}"]
    gpus.release()
    assert gpus.holders(["0", "1"], tmp_path / "locks") == []
    assert gpus.claim(1, environ=dict(env)) == ["0"]


@pytest.mark.parametrize("distributed, num_processes", [("deepspeed", 1), ("plain", 1), ("deepspeed", 2)])
def test_accelerate_launch_keeps_the_jobs_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distributed: str, num_processes: int
) -> None:
    """The launcher's own environment preparation, fed the generated config, leaves the job's
    CUDA_VISIBLE_DEVICES (its claim) alone; ``gpu_ids: '0'`` would have replaced it."""
    launch = pytest.importorskip("accelerate.commands.launch")
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_simple_launcher_cmd_env

    cfg = TrainConfig.from_dict({"distributed": distributed, "num_gpus": num_processes})
    files = write_launch_files(tmp_path, cfg, use_cpu=False, num_processes=num_processes, port=29650)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7"[: 2 * num_processes - 1])

    def launcher_env(config: Path) -> dict[str, str]:
        args = launch.launch_command_parser().parse_args(["--config_file", str(config), "train.py"])
        args, defaults, _ = launch._validate_launch_command(args)
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        prepare = prepare_deepspeed_cmd_env if args.use_deepspeed else prepare_simple_launcher_cmd_env
        return prepare(args)[1]

    assert launcher_env(files.accelerate_yaml)["CUDA_VISIBLE_DEVICES"] == "5,7"[: 2 * num_processes - 1]
    # the check has teeth: a config that names a device overrides the job's
    pinned = yaml.safe_load(files.accelerate_yaml.read_text()) | {"gpu_ids": "0" if num_processes == 1 else "0,1"}
    (tmp_path / "pinned.yaml").write_text(yaml.safe_dump(pinned))
    assert launcher_env(tmp_path / "pinned.yaml")["CUDA_VISIBLE_DEVICES"] != "5,7"[: 2 * num_processes - 1]


SNAKEFILE = """
rule all:
    input: "a.txt", "b.txt"

rule gpu_a:
    output: "a.txt"
    resources: gpu=1
    script: "hold.py"

rule gpu_b:
    output: "b.txt"
    resources: gpu=1
    script: "hold.py"
"""

# claim, say so, then wait until the other job has claimed too (so the two run at the same time)
HOLD_SCRIPT = """
import os, time
from pathlib import Path
from tav_pipeline import gpus
gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule, poll_s=0.05)
out = Path(snakemake.output[0])
Path(f"{out}.claimed").write_text(os.environ["CUDA_VISIBLE_DEVICES"])
other = Path("b.txt.claimed" if out.name == "a.txt" else "a.txt.claimed")
end = time.monotonic() + 60
while not other.exists() and time.monotonic() < end:
    time.sleep(0.05)
out.write_text(os.environ["CUDA_VISIBLE_DEVICES"] + (" concurrent" if other.exists() else " alone"))
"""


def test_snakemake_runs_two_gpu_jobs_at_once_on_different_devices(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "hold.py").write_text(HOLD_SCRIPT)
    bin_dir = _fake_smi(tmp_path / "bin", SMI_LISTING)
    env = _clean_env(tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=2", "-d", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = sorted((tmp_path / name).read_text() for name in ("a.txt", "b.txt"))
    assert got == ["0 concurrent", "1 concurrent"]
