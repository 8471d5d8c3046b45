"""The shipped config.yaml as a researcher first meets it: the DAG of `snakemake -n --cores 8
tables_and_report` on a fresh clone (no asset anywhere), the plan against the paper, and the
workflow's promise never to touch a file a user placed by hand."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SNAKEMAKE, copy_workflow

YEARS_AGO = 1_500_000_000  # 2017-07-14: assets downloaded long before the clone


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run."""
    stats: dict[str, int] = {}
    block = output.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        stats[m.group(1)] = int(m.group(2))
    return stats


def snakemake(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    proc = subprocess.run(
        SNAKEMAKE + list(args), cwd=work, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if check:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


@pytest.fixture()
def fresh(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "clone")


def test_the_first_command_plans_the_papers_study(fresh: Path) -> None:
    """No metadata, no model, no checkout: the DAG builds, with every fetch rule in it and the
    paper's study behind them (3 epochs, 3 groups, the baselines of Table 1)."""
    proc = snakemake(fresh, "-n", "--cores", "8", "tables_and_report")
    jobs = job_stats(proc.stdout + proc.stderr)
    config = yaml.safe_load((fresh / "config.yaml").read_text())
    epochs = config["train"]["epochs"]
    groups = config["generate"]["groups"]
    table1 = [m["name"] for m in config["tables"]["table1"]["models"]]
    baselines = [m for m in table1 if m != config["train"]["model"]]
    assert epochs == [16, 24, 36] and groups == ["A", "B", "C"] and baselines == ["cogvideox", "easyanimate"]
    for rule in ("fetch_metadata", "fetch_blip", "fetch_opensora", "fetch_opensora_weights", "fetch_vbench_weights"):
        assert jobs[rule] == 1, rule
    assert jobs["fetch_baseline_model"] == len(baselines)
    assert jobs["train_opensora"] == len(epochs)
    assert jobs["generate_videos"] == 1 + len(epochs)  # the baseline and each epoch, every group in one job
    assert jobs["generate_baseline_videos"] == len(baselines)  # Table 1's group C only
    assert jobs["evaluate_vbench"] == (1 + len(epochs)) * len(groups)  # Table 2's rows
    assert jobs["count_segments"] == (1 + len(epochs)) * len(groups) + len(baselines)
    assert jobs["make_tables"] == 1 and jobs["render_report"] == 1
    text = proc.stdout
    for e in epochs:
        assert f"results/checkpoints/opensora_plan/epoch_{e}" in text
    assert "results/generated/easyanimate/baseline/C" in text and "results/generated/cogvideox/baseline/C" in text
    assert "train_model" not in jobs and "cache_latents" not in jobs  # the paper's backend is Open-Sora-Plan


def test_a_model_no_rule_generates_is_a_config_error(fresh: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump({"tables": {"table1": {"models": [{"name": "opensora_plan"}, {"name": "sora", "label": "Sora"}]}}})
    )
    proc = snakemake(fresh, "-n", "--cores", "1", "--configfile", "config.yaml", str(extra), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'sora'" in out and "generate.baselines" in out
    assert "Job stats" not in out  # refused before any job is planned


def _place(path: Path, content: dict[str, bytes]) -> dict[Path, bytes]:
    placed = {}
    for rel, data in content.items():
        f = path / rel if rel else path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        os.utime(f, (YEARS_AGO, YEARS_AGO))
        placed[f] = data
    os.utime(path, (YEARS_AGO, YEARS_AGO))
    return placed


def _metadata_csv() -> bytes:
    rows = [
        ("vid_dog", "[['0:00:01.000', '0:00:05.000']]", "['A dog runs on a beach.']"),
        ("vid_car", "[['0:00:02.000', '0:00:09.000']]", "['A car drives down a road.']"),
        ("cam1_00000000000000000000", "[['0:00:00.500', '0:00:04.000']]", "['A chef cuts onions.']"),
    ]
    frame = pd.DataFrame(
        [{"videoID": v, "url": f"https://www.youtube.com/watch?v={v}", "timestamp": t, "caption": c,
          "matching_score": "[0.45]"} for v, t, c in rows]  # fmt: skip
    )
    return frame.to_csv(index=False).encode()


def test_assets_placed_by_hand_are_never_touched(fresh: Path, tmp_path: Path) -> None:
    """The metadata CSV and a model folder placed years before the clone (older than every script
    that could fetch them), a run that reads the CSV, and a change to the fetch scripts: both stay
    byte for byte and no fetch rule even exists for them."""
    placed = _place(fresh / "resources" / "panda70m_validation.csv", {"": _metadata_csv()})
    blip = fresh / "resources" / "models" / "blip-image-captioning-large"
    placed |= _place(blip, {"config.json": b'{"model_type": "blip"}\n', "model.safetensors": b"\x00" * 64})
    rules = snakemake(fresh, "--list-rules").stdout.split()
    assert "fetch_metadata" not in rules and "fetch_blip" not in rules
    assert "fetch_opensora" in rules  # still missing: fetched when needed

    extra = tmp_path / "small.yaml"
    extra.write_text(yaml.safe_dump({"sample": {"size": 2, "population": 3}}))
    args = ["results/sample.csv", "--cores", "1", "--configfile", "config.yaml", str(extra)]
    snakemake(fresh, *args)
    assert len(pd.read_csv(fresh / "results" / "sample.csv")) == 2
    for script in ("fetch_metadata.py", "fetch_blip.py", "sample_videos.py"):
        (fresh / "scripts" / script).touch()  # "code has changed", and newer than the assets
    snakemake(fresh, "--forceall", *args)
    for f, data in placed.items():
        assert f.read_bytes() == data, f
        assert f.stat().st_mtime == YEARS_AGO, f
    assert os.stat(blip).st_mtime == YEARS_AGO
    dry = snakemake(fresh, "-n", "--forceall", "--cores", "1", "tables_and_report").stdout
    assert "fetch_metadata" not in dry and "fetch_blip" not in dry


def test_offline_the_first_run_ends_in_a_list_of_what_is_missing(fresh: Path) -> None:
    """No network: every fetch fails, and the run ends with one list naming each missing asset,
    its path, the rule and where it comes from, not with a traceback."""
    proc = snakemake(fresh, "--cores", "2", "results/sample.csv", "--keep-going", check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert "asset(s) this run needs are missing" in err
    listed = err.split("asset(s) this run needs are missing", 1)[1]
    for needle in (
        "resources/panda70m_validation.csv",
        "rule fetch_metadata",
        "resources/models/blip-image-captioning-large",
        "hub Salesforce/blip-image-captioning-large@main",
        "resources/Open-Sora-Plan",
        "https://github.com/PKU-YuanGroup/Open-Sora-Plan.git at c41050ae06ef35dd9da531d29431dbea6e53a9d9",
        "resources/diffusers/EasyAnimateV5.1-7b-zh-diffusers",
        "fetch_vbench_weights",
    ):
        assert needle in listed, needle
    assert "ERROR: missing asset resources/panda70m_validation.csv; the rule that provides it is 'fetch_metadata'" in err
    assert "Traceback" not in err
    assert not (fresh / "resources").exists() or not any((fresh / "resources").rglob("*.csv"))
