"""profiles/slurm: what it asks SLURM for, which rules it sends to the GPU partition, and the demo
run through it on a real one-node SLURM cluster, checked against SLURM's own records.

The cluster (tests/slurm/cluster.sh) is Debian's SLURM 22.05 on localhost with munge, slurmdbd
and a private MariaDB; its one node offers two GPUs of type h200 (on /dev/null, /dev/zero) in the partition
`gpu`. It needs root and the packages that .ci/slurm-setup installs: without them the cluster
tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
import yte

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
LIST_RULES = ROOT / "tests" / "slurm" / "list_rules.py"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SLURM_BINARIES = ["munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "scontrol", "mariadbd"]
MARK = "# Written by tests/slurm/cluster.sh"
TEST_ACCOUNT = "tavtest"  # made by cluster.sh
TRAINING_RULES = {"train_model", "train_opensora"}  # the diffusers and the Open-Sora-Plan backend
# Small enough for the test node (half the machine's memory); they also exercise the overrides.
SITE = {"TAV_SLURM_ACCOUNT": TEST_ACCOUNT, "TAV_SLURM_MEM_MB": "1000", "TAV_SLURM_GPU_MEM_MB": "2000"}
# Outputs that differ between any two runs: timings (JSON keys, TSV/CSV columns) and the folder
# the run happened in.
TIMING_KEYS = {"seconds"}
# Generated videos are not reproducible even between two local runs (the demo's random tiny
# CogVideoX turns float noise into pixel differences of up to ~27/255 in some videos): compared by
# frame count and size only. Every other output, the trained weights included, byte for byte.
NOT_REPRODUCIBLE = {"generated": ".mp4"}  # results/<folder>/**/*<suffix>
# Everything computed from the generated videos (metrics, tables, figures, the report): generated
# pixels differ between runs on CPU (thread scheduling), so these are compared by layout.
FROM_GENERATED = {"eval", "figures", "report.html", "table1.csv", "table2.csv", "table1_vs_paper.csv", "table2_vs_paper.csv"}


def render_profile(environ: dict[str, str]) -> dict[str, Any]:
    """The profile as Snakemake reads it (YTE-rendered), under the given TAV_SLURM_* settings."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("TAV_SLURM_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(environ)
    try:
        with PROFILE.open() as handle:
            return yte.process_yaml(handle, require_use_yte=True)
    finally:
        for key in environ:
            os.environ.pop(key, None)
        os.environ.update(saved)


def workflow_rules() -> list[dict[str, Any]]:
    """Every rule of the workflow, under the paper's and the demo's config and every training
    backend (tests/slurm/list_rules.py), once per name; a rule that declares a GPU in any of
    them counts as declaring one."""
    proc = subprocess.run(
        [sys.executable, str(LIST_RULES), str(ROOT), "--variants"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    merged: dict[str, dict[str, Any]] = {}
    for rules in json.loads(proc.stdout).values():
        for rule in rules:
            if rule["name"] not in merged or declares_gpu(rule):
                merged[rule["name"]] = rule
    return list(merged.values())


def declares_gpu(rule: dict[str, Any]) -> bool:
    return rule["resources"].get("gpu", 0) not in (0, None)


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    return workflow_rules()


# --- the profile -------------------------------------------------------------------------------


def test_profile_sends_gpu_rules_to_the_gpu_partition_with_one_h200(rules: list[dict[str, Any]]) -> None:
    profile = render_profile({})
    assert profile["executor"] == "slurm"
    defaults = profile["default-resources"]
    assert isinstance(defaults["runtime"], int) and isinstance(defaults["mem_mb"], int)
    # Unset, the cluster picks its default partition and the plugin guesses the account.
    assert "slurm_partition" not in defaults and "slurm_account" not in defaults
    gpu_rules = profile["set-resources"]
    assert "train_model" in gpu_rules and "caption_scenes" in gpu_rules
    for name, resources in gpu_rules.items():
        # Quoted so that Snakemake keeps them as strings rather than evaluating them.
        assert resources["slurm_partition"] == "'gpu'", name
        # The training rules name their own gres (their GPU count is train.num_gpus).
        assert resources.get("gres") == (None if name in TRAINING_RULES else "'gpu:h200:1'"), name
        # gres alone asks for the GPU: sbatch rejects --gres=gpu:h200:1 with --gpus=1.
        assert resources["gpu"] == 0, name
        assert resources["runtime"] >= defaults["runtime"], name
    assert gpu_rules["train_model"]["runtime"] > gpu_rules["caption_scenes"]["runtime"]
    training = [r for r in rules if r["name"] in TRAINING_RULES]
    assert {r["name"] for r in training} == TRAINING_RULES
    for rule in training:  # the paper's (and the demo's) one GPU
        assert (rule["resources"]["gres"], rule["resources"]["gpu"]) == ("gpu:h200:1", 1), rule


@pytest.mark.parametrize("backend", ["diffusers", "opensora"])
def test_training_rules_ask_for_train_num_gpus_of_the_sites_gpu_type(backend: str) -> None:
    config = {"train": {"backend": backend, "num_gpus": 4}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")} | {"TAV_SLURM_GPU_GRES": "gpu:a100:1"}
    proc = subprocess.run(
        [sys.executable, str(LIST_RULES), str(ROOT), "--configfile", str(ROOT / "config.yaml"), "--config", json.dumps(config)],
        capture_output=True, text=True, check=False, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (rule,) = [r for r in json.loads(proc.stdout) if r["name"] in TRAINING_RULES]
    assert (rule["resources"]["gres"], rule["resources"]["gpu"]) == ("gpu:a100:4", 4), rule


def test_site_settings_override_the_profile_one_at_a_time() -> None:
    profile = render_profile(
        {
            "TAV_SLURM_ACCOUNT": "proj42",
            "TAV_SLURM_PARTITION": "short",
            "TAV_SLURM_RUNTIME": "15",
            "TAV_SLURM_MEM_MB": "500",
            "TAV_SLURM_GPU_PARTITION": "h200q",
            "TAV_SLURM_GPU_GRES": "gpu:h200:2",
            "TAV_SLURM_GPU_RUNTIME": "30",
            "TAV_SLURM_CAPTION_SCENES_RUNTIME": "45",
            "TAV_SLURM_TRAIN_MODEL_MEM_MB": "250000",
        }
    )
    defaults = profile["default-resources"]
    assert (defaults["slurm_account"], defaults["slurm_partition"]) == ("'proj42'", "'short'")
    assert (defaults["runtime"], defaults["mem_mb"]) == (15, 500)
    train = profile["set-resources"]["train_model"]
    assert (train["slurm_partition"], train["runtime"], train["mem_mb"]) == ("'h200q'", 30, 250000)
    assert profile["set-resources"]["generate_videos"]["gres"] == "'gpu:h200:2'"
    # A rule's own setting beats the one for all GPU rules; what was not set keeps its default.
    caption = profile["set-resources"]["caption_scenes"]
    assert (caption["runtime"], caption["mem_mb"]) == (45, render_profile({})["set-resources"]["caption_scenes"]["mem_mb"])


def test_every_rule_that_declares_a_gpu_is_routed_to_the_gpu_partition(rules: list[dict[str, Any]]) -> None:
    declared = {r["name"] for r in rules if declares_gpu(r)}
    assert "caption_scenes" in declared  # the check is not vacuous
    routed = set(render_profile({})["set-resources"])
    missing = sorted(declared - routed)
    assert not missing, (
        f"rules {missing} declare `resources: gpu` but profiles/slurm/config.yaml does not send them to "
        "the GPU partition: add them to GPU_RULES there"
    )
    # An entry for a rule that is gone, or that no longer asks for a GPU, is a stale reservation.
    known = {r["name"] for r in rules}
    stale = sorted(name for name in routed & known if name not in declared)
    assert not stale, f"GPU_RULES in profiles/slurm/config.yaml lists {stale}, which declare no gpu"


# --- the cluster -------------------------------------------------------------------------------


def cluster_unavailable() -> str | None:
    """Why a SLURM cluster can't be started here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starting SLURM daemons and writing /etc/slurm needs root"
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        return f"SLURM packages are not installed (no {', '.join(missing)}): run .ci/slurm-setup"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed: run .ci/slurm-setup"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and MARK not in conf.read_text(errors="replace")[:500]:
        return "/etc/slurm/slurm.conf belongs to a real SLURM installation here: not touching it"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = cluster_unavailable()
    if reason:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must run the SLURM test, but {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-cluster")
    proc = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=180,
    )
    if proc.returncode != 0:
        pytest.fail(f"the test cluster did not start:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    try:
        yield state
    finally:
        subprocess.run(
            ["bash", str(CLUSTER), "stop", str(state)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=180,
        )


@dataclass
class Job:
    """One SLURM job of the run, from sacct."""

    job_id: str
    rule: str
    account: str
    partition: str
    state: str
    req_tres: str
    alloc_tres: str


@dataclass
class Runs:
    local: Path
    slurm: Path
    jobs: list[Job]
    changed: list[Path]  # results files that the SLURM run wrote, relative to the workdir
    slurm_started: float


def run(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False, timeout=1500)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"{' '.join(argv)} failed; see {log}\n{(proc.stdout + proc.stderr)[-6000:]}"


def sacct_jobs() -> list[Job]:
    fields = "JobID,Account,Partition,State,ReqTRES,AllocTRES,Comment"
    out = subprocess.run(
        ["sacct", "-X", "-a", "-P", "-n", "--starttime", "now-1days", "-o", fields],
        capture_output=True, text=True, check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, account, partition, state, req, alloc, comment = line.split("|", 6)
        # The plugin's comment: rule_<rule>[_wildcards_<values>].
        rule = re.sub(r"^rule_", "", comment).split("_wildcards_")[0]
        jobs.append(Job(job_id, rule, account, partition, state, req, alloc))
    return jobs


def targets(rules: list[dict[str, Any]]) -> list[str]:
    """The demo's default target, and training where the workflow has it."""
    names = {r["name"] for r in rules}
    return ["all"] + [t for t in ("train_all",) if t in names]


@pytest.fixture(scope="module")
def runs(cluster: Path, rules: list[dict[str, Any]], demo_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The demo run locally; then, in a copy of that run, the workflow run again through
    profiles/slurm on the cluster, forced to refetch one video that makes a clip.

    Snakemake then sends every job downstream of that video through SLURM: the per-video rules
    (detect_cuts is a checkpoint), the GPU rules, the aggregates (tav.json and on) and the
    training epochs. Running the whole demo through SLURM as well would double the test's time
    for the same kinds of job.
    """
    base = tmp_path_factory.mktemp("slurm-demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    local = demo_workdir

    slurm = base / "slurm"
    shutil.copytree(local, slurm, symlinks=True)
    # a video whose clip passed validation, so that captioning, tav.json and training follow it
    video = sorted(item["video"] for item in json.loads((slurm / "results" / "tav.json").read_text())["items"])[0]
    started = time.time()
    run(
        SNAKEMAKE + ["--profile", "profiles/demo", "--profile", "profiles/slurm",
                     "--slurm-init-seconds-before-status-checks", "2",
                     "--forcerun", f"results/videos/{video}.json", "--", *targets(rules)],
        slurm, env | SITE, base / "slurm.log",
    )
    changed = sorted(
        p.relative_to(slurm) for p in (slurm / "results").rglob("*")
        if p.is_file() and p.stat().st_mtime >= started and "logs" not in p.parts and "benchmarks" not in p.parts
    )
    return Runs(local, slurm, sacct_jobs(), changed, started)


@pytest.mark.slow
def test_training_and_other_gpu_jobs_asked_slurm_for_one_h200(runs: Runs, rules: list[dict[str, Any]]) -> None:
    gpu_rules = {r["name"] for r in rules if declares_gpu(r)}
    gpu_jobs = [j for j in runs.jobs if j.rule in gpu_rules]
    ran = {j.rule for j in gpu_jobs}
    assert "caption_scenes" in ran
    if "train_all" in {r["name"] for r in rules}:
        assert ran & TRAINING_RULES, "the training rule did not run through SLURM"
    for job in gpu_jobs:
        assert (job.partition, job.state) == ("gpu", "COMPLETED"), job
        assert "gres/gpu:h200=1" in job.req_tres.split(","), job
        assert "gres/gpu:h200=1" in job.alloc_tres.split(","), job
        # The controller's record of the request itself (sacct shows the TRES it became).
        shown = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True, check=True).stdout
        assert "TresPerNode=gres:gpu:h200:1" in shown, shown
        assert "Partition=gpu " in shown, shown


@pytest.mark.slow
def test_cpu_jobs_ran_in_the_default_partition_without_a_gpu(runs: Runs, rules: list[dict[str, Any]]) -> None:
    gpu_rules = {r["name"] for r in rules if declares_gpu(r)}
    cpu_jobs = [j for j in runs.jobs if j.rule not in gpu_rules]
    # The downstream of one video: each per-video rule, the checkpoint, and the dataset.
    assert {"fetch_video", "detect_cuts", "extract_clip", "validate_clip", "extract_keyframes", "build_tav"} <= {
        j.rule for j in cpu_jobs
    }
    for job in cpu_jobs:
        assert (job.partition, job.state) == ("cpu", "COMPLETED"), job
        assert "gres/gpu" not in job.req_tres, job
    # TAV_SLURM_ACCOUNT reached sbatch.
    assert {j.account for j in runs.jobs} == {TEST_ACCOUNT}


def canonical(path: Path, workdirs: tuple[Path, ...]) -> str:
    """A file's content hash, ignoring timing fields and the folders that the runs happened in
    (the SLURM run's copy of the demo corpus table still names the local run's folder)."""
    parts = path.parts
    stage = parts[parts.index("results") + 1] if "results" in parts[:-1] else None
    if stage in FROM_GENERATED or (stage is None and path.name in FROM_GENERATED):
        # Scores of generated videos inherit their pixel noise: compare the layout only.
        if path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(path.read_text())))
            return f"csv {rows[0] if rows else []} x {len(rows)}"
        return "exists"
    if NOT_REPRODUCIBLE.get(stage or "") == path.suffix:
        with av.open(str(path)) as container:
            shapes = [frame.to_ndarray(format="rgb24").shape for frame in container.decode(video=0)]
        return f"{len(shapes)} frames of {sorted(set(shapes))}"
    data = path.read_bytes()
    for workdir in workdirs:
        for prefix in {str(workdir.resolve()), str(workdir)}:
            data = data.replace(prefix.encode(), b"<workdir>")

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    if path.suffix == ".json":
        data = json.dumps(strip(json.loads(data)), sort_keys=True).encode()
    elif path.suffix == ".jsonl":
        data = b"\n".join(json.dumps(strip(json.loads(line)), sort_keys=True).encode() for line in data.splitlines() if line.strip())
    elif path.suffix in (".tsv", ".csv"):  # e.g. the training losses: a `seconds` column per step
        rows = list(csv.reader(io.StringIO(data.decode()), delimiter="\t" if path.suffix == ".tsv" else ","))
        keep = [i for i, name in enumerate(rows[0] if rows else []) if name not in TIMING_KEYS]
        data = json.dumps([[row[i] for i in keep if i < len(row)] for row in rows]).encode()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_slurm_outputs_are_the_local_runs(runs: Runs) -> None:
    assert Path("results/tav.json") in runs.changed and Path("results/captions.jsonl") in runs.changed
    assert any(p.parts[1] == "cuts" for p in runs.changed) and any(p.parts[1] == "clips" for p in runs.changed)
    workdirs = (runs.slurm, runs.local)
    different = [str(p) for p in runs.changed if canonical(runs.slurm / p, workdirs) != canonical(runs.local / p, workdirs)]
    assert not different, f"SLURM's outputs differ from the local run's: {different}"


@pytest.mark.slow
def test_training_on_two_gpus_gets_two_from_slurm_and_runs_two_processes(
    runs: Runs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """train.num_gpus: 2 in a copy of the SLURM run: the first epoch's job asks SLURM for gres
    gpu:h200:2, is granted both (and a CPU per process), and trains in two DeepSpeed ZeRO-2
    processes (on the node's CPUs), which save one optimizer partition each."""
    work = tmp_path_factory.mktemp("slurm-2gpu") / "run"
    shutil.copytree(runs.slurm, work, symlinks=True)
    (work / "gpus2.yaml").write_text("train:\n  num_gpus: 2\n")  # nested --config values arrive as strings
    before = {j.job_id for j in sacct_jobs()}
    epoch = work / "results" / "checkpoints" / "tiny_cogvideox" / "epoch_5"  # the demo's first epoch
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    run(
        SNAKEMAKE + ["--profile", "profiles/demo", "--profile", "profiles/slurm",
                     "--slurm-init-seconds-before-status-checks", "2",
                     "--configfile", "config.yaml", "profiles/demo/overrides.yaml", "gpus2.yaml",
                     "--", str(epoch.relative_to(work))],
        work, env | SITE, work / "slurm-2gpu.log",
    )
    (job,) = [j for j in sacct_jobs() if j.job_id not in before and j.rule == "train_model"]
    assert (job.partition, job.state) == ("gpu", "COMPLETED"), job
    for tres in (job.req_tres, job.alloc_tres):
        assert {"gres/gpu:h200=2", "cpu=2"} <= set(tres.split(",")), job
    shown = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True, check=True).stdout
    assert "TresPerNode=gres:gpu:h200:2" in shown, shown
    state = json.loads((epoch / "train_state.json").read_text())
    # the first epoch is 5 passes over the train clips at a global batch of 2
    train = sum(1 for item in json.loads((work / "results" / "tav.json").read_text())["items"] if item["split"] == "train")
    assert (state["num_processes"], state["global_step"]) == (2, train * 5 // 2)
    partitions = sorted(p.name for p in (epoch / "pytorch_model").glob("zero_pp_rank_*"))
    assert partitions == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]
