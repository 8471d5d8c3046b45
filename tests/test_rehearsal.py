"""The rehearsal: the shipped config's DAG run end to end on a CPU, every external asset replaced
by a tiny stand-in at the path config.yaml names (profiles/rehearsal, tests/rehearsal/standins.py),
to both of the paper's tables; the stand-ins, placed as a user would place assets, come out of the
run byte for byte as they went in."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import SNAKEMAKE, copy_workflow
from rehearsal import standins
from test_shipped_config import job_stats

TARGETS = ["tables_and_report"]


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAV_SLURM_")}
    return subprocess.run(
        SNAKEMAKE + ["--profile", "profiles/rehearsal", *args], cwd=work, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=2400,
    )  # fmt: skip


@pytest.mark.slow
def test_the_shipped_dag_reaches_both_tables_on_stand_ins(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "clone")
    placed = standins.place_all(work)
    before = standins.fingerprint(placed)
    assert len(before) > 20

    plan = _snakemake(work, "-n", *TARGETS)
    assert plan.returncode == 0, (plan.stdout + plan.stderr)[-4000:]
    jobs = job_stats(plan.stdout)
    assert not [rule for rule in jobs if rule.startswith("fetch_") and rule != "fetch_video"]  # all placed
    # the shipped plan (tests/test_shipped_config.py), job for job
    assert (jobs["train_opensora"], jobs["generate_videos"], jobs["generate_baseline_videos"]) == (3, 4, 2)
    assert (jobs["count_segments"], jobs["evaluate_vbench"], jobs["make_tables"]) == (14, 12, 1)

    start = time.monotonic()
    run = _snakemake(work, *TARGETS)
    (work / "rehearsal.out").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    print(f"rehearsal: {time.monotonic() - start:.0f} s")

    results = work / "results"
    table2 = pd.read_csv(results / "table2.csv")
    assert [(r.model, r.group, r.checkpoint) for r in table2.itertuples()] == [
        (model, group, checkpoint)
        for model, checkpoint in [("baseline", "baseline"), *[("post-trained", f"epoch_{e}") for e in (16, 24, 36)]]
        for group in "ABC"
    ]
    assert table2["average_segments"].between(1, 3).all() and (table2["vbench_weights"] == "standin").all()
    table1 = pd.read_csv(results / "table1.csv")
    assert list(table1["name"]) == ["opensora_plan", "cogvideox", "easyanimate"]
    assert table1["average_segments"].between(1, 3).all() and (table1["videos"] == 4).all()
    for name in ("opensora_plan", "cogvideox", "easyanimate"):
        assert len(list((results / "generated" / name / "baseline" / "C").glob("*.mp4"))) == 4, name
    assert (results / "report.html").is_file() and (results / "figures" / "frame_strip_3.png").is_file()

    assert standins.fingerprint(placed) == before  # nothing the "user" placed was touched
    again = _snakemake(work, "-n", *TARGETS)
    assert "Nothing to be done" in again.stdout + again.stderr
