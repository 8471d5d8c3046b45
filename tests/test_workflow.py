"""The workflow as a user runs it: lint, config schema, and the demo end to end."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "rules" / "schemas" / "config.schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def load_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_lint_is_clean() -> None:
    proc = subprocess.run(SNAKEMAKE + ["--lint"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_schema_fills_defaults() -> None:
    config: dict = {}
    validate(config, str(SCHEMA))
    assert config["clips"]["length"] == 10.0
    assert config["cuts"]["weights"] == {"hue": 1.0, "saturation": 1.0, "value": 1.0}
    assert config["dataset"]["split"]["policy"] == "eval_first"


def test_schema_rejects_unknown_keys_and_bad_values() -> None:
    for bad in ({"clips": {"lenght": 10}}, {"typo": 1}, {"cuts": {"mode": "magic"}}, {"sample": {"size": 0}}):
        with pytest.raises(WorkflowError):
            validate(copy.deepcopy(bad), str(SCHEMA))


def test_config_holds_the_papers_numbers() -> None:
    config = load_config()
    validate(config, str(SCHEMA))
    assert config["sample"]["size"] == 500 and config["sample"]["population"] == 2000
    assert config["clips"]["length"] == 10.0 and config["clips"]["edge_policy"] == "paper"
    assert config["clips"]["encoder"]["vcodec"] == "libx264" and config["clips"]["encoder"]["acodec"] == "aac"
    assert config["validation"]["threshold"] == 50.0
    split = config["dataset"]["split"]
    assert (split["train"], split["val"], split["test"]) == (480, 50, 50)
    assert config["dataset"]["opensora"] == {"num_frames": 33, "height": 256, "width": 256, "fps": 8}
    assert config["dataset"]["prompt_template"] == "Previous scene: {scene1}; Next scene: {scene2}"


def test_every_rule_has_log_and_conda() -> None:
    text = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    blocks = [b for b in text.split("\nrule ")[1:]] + [b for b in text.split("\ncheckpoint ")[1:]]
    assert blocks
    for block in blocks:
        body = block.split("\nrule ")[0].split("\ncheckpoint ")[0]
        name = body.split(":")[0]
        assert "    log:" in body, name
        assert "    conda:" in body, name


@pytest.fixture(scope="module")
def demo_run(demo_workdir: Path) -> Path:
    return demo_workdir


@pytest.mark.slow
def test_demo_reaches_tav_json(demo_run: Path) -> None:
    results = demo_run / "results"
    truth = json.loads((results / "demo" / "truth.json").read_text())["videos"]
    tav = json.loads((results / "tav.json").read_text())
    with (results / "sample.csv").open() as handle:
        key_of = {row["videoID"]: row["video"] for row in csv.DictReader(handle)}
    expected_clips = {key_of[v] for v, t in truth.items() if t["expect"] == "clip"}
    items = {item["video"]: item for item in tav["items"]}
    assert set(items) == expected_clips
    for item in items.values():
        assert item["prompt"] == f"Previous scene: {item['scene1']}; Next scene: {item['scene2']}"
        assert (demo_run / item["clip"]).exists() or Path(item["clip"]).exists()
        assert item["split"] in ("train", "val", "test")
    assert sum(1 for i in items.values() if i["split"] == "test") == len(tav["test_prompts"]["C"])


@pytest.mark.slow
def test_demo_rejects_every_bad_input_with_its_reason(demo_run: Path) -> None:
    results = demo_run / "results"
    truth = json.loads((results / "demo" / "truth.json").read_text())["videos"]
    with (results / "sample.csv").open() as handle:
        key_of = {row["videoID"]: row["video"] for row in csv.DictReader(handle)}
    with (results / "rejects.csv").open() as handle:
        rejects = {row["video"]: row for row in csv.DictReader(handle)}
    for video_id, t in truth.items():
        key = key_of[video_id]
        if t["expect"] == "clip":
            assert key not in rejects, (video_id, rejects.get(key))
        else:
            assert key in rejects, video_id
            assert rejects[key]["reason"] == t["expect"], (video_id, rejects[key])


@pytest.mark.slow
def test_demo_clips_are_centred_on_the_true_first_cut(demo_run: Path) -> None:
    results = demo_run / "results"
    truth = json.loads((results / "demo" / "truth.json").read_text())["videos"]
    with (results / "sample.csv").open() as handle:
        key_of = {row["videoID"]: row["video"] for row in csv.DictReader(handle)}
    for video_id, t in truth.items():
        if t["expect"] != "clip" or t["special"] == "flash":
            continue
        sidecar = json.loads((results / "clips" / f"{key_of[video_id]}.json").read_text())
        assert sidecar["cut_time"] == pytest.approx(t["cuts"][0], abs=0.06), video_id
        assert sidecar["duration"] <= 10.0 + 1e-6
