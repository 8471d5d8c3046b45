"""The workflow as a user runs it: lint, config schema, and the demo end to end."""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    train = config["train"]
    assert (train["num_frames"], train["height"], train["width"], train["fps"]) == (33, 256, 256, 8)
    assert config["dataset"]["prompt_template"] == "Previous scene: {scene1}; Next scene: {scene2}"


# Every rule object the workflow defines, with the settings the test below checks: Snakemake
# parses the Snakefile (with every include and every conditional rule of that config) in a child
# process, so the test sees rules at any indentation exactly as a run does.
RULES_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(p) for p in sys.argv[1:]]),
        snakefile=Path("Snakefile"),
    )
    rules = {
        r.name: {
            "log": bool(r.log),
            "conda": r.conda_env is not None,
            "output": bool(r.output),
            "wildcards": sorted(r.wildcard_names),
        }
        for r in workflow._workflow.rules
    }
    rules["<global wildcard_constraints>"] = {"wildcards": sorted(workflow._workflow.wildcard_constraints)}
print(json.dumps(rules))
"""
RULE_DECLARATION = re.compile(r"^[ \t]*(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:", re.MULTILINE)


def workflow_rules(*configfiles: str) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", RULES_PROBE, *configfiles], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rules = json.loads(proc.stdout.strip().splitlines()[-1])
    constrained = set(rules.pop("<global wildcard_constraints>")["wildcards"])
    # every wildcard of every rule has a global constraint (common.smk)
    unconstrained = {name: sorted(set(r["wildcards"]) - constrained) for name, r in rules.items()}
    assert not {name: w for name, w in unconstrained.items() if w}, configfiles
    return rules


def test_every_rule_has_log_and_conda(tmp_path: Path) -> None:
    # the shipped config defines the fetch rules (its assets are missing), the same with the
    # diffusers backend that backend's, the demo profile the stand-in and tiny-model rules;
    # together they define every rule the files declare
    diffusers = tmp_path / "diffusers.yaml"
    diffusers.write_text("train:\n  backend: diffusers\n")
    rules = workflow_rules("config.yaml") | workflow_rules("config.yaml", str(diffusers))
    rules |= workflow_rules("config.yaml", "profiles/demo/overrides.yaml")
    files = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
    declared = {name for f in files for name in RULE_DECLARATION.findall(f.read_text())}
    # the training rule is declared once (`rule:` with `name:`) and named by each backend
    from tav_pipeline.backends import registry

    assert "\nrule:\n    name:\n        BACKEND.training_rule\n" in (ROOT / "rules" / "train.smk").read_text()
    declared |= {b.training_rule for b in registry().values()}
    assert len(declared) > 20 and declared == set(rules), (sorted(declared - set(rules)), sorted(set(rules) - declared))
    # a rule with outputs is a job: it has a log and a conda env; only target rules have neither
    targets = {name for name, r in rules.items() if not r["output"]}
    assert targets == {"all", "tables_and_report"}
    missing = {name: [k for k in ("log", "conda") if not r[k]] for name, r in rules.items() if name not in targets}
    assert not {name: keys for name, keys in missing.items() if keys}


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
    # keyframes (and so captions) only for the clips that passed validation
    keyframed = {p.name for p in (results / "keyframes").iterdir() if p.is_dir() and any(p.glob("*.png"))}
    assert keyframed == {key_of[v] for v, t in truth.items() if t["expect"] == "clip"}
    skipped = json.loads((results / "keyframes" / f"{key_of[ODD_ID]}.json").read_text())
    assert (skipped["status"], skipped["reason"]) == ("rejected", "validation_failed")
    assert key_of[ODD_ID] != ODD_ID and rejects[key_of[ODD_ID]]["stage"] == "validate_clip"


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


# --------------------------------------------------------------------------------------------
# Odd IDs and per-video rejects, on a tiny corpus of real videos

ODD_ID = "cam1_00000000000000000000"  # ends in twenty "0": Snakemake's periodic-wildcard check


def tiny_corpus(work: Path, videos: dict[str, Path | None]) -> Path:
    """A Panda-70M-format metadata CSV of ``videos`` (ID -> file in a local folder, or None for a
    missing one) and a config that samples all of them offline; returns the config file."""
    import shutil

    folder = work / "tiny" / "videos"
    folder.mkdir(parents=True)
    rows = []
    for video_id, path in videos.items():
        if path is not None:
            shutil.copy(path, folder / f"{video_id}.mp4")
        rows.append({
            "videoID": video_id, "url": "", "timestamp": repr([["0:00:00.000", "0:00:10.000"]]),
            "caption": repr(["a test pattern"]), "matching_score": repr([0.5]),
        })
    with (work / "tiny" / "meta.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = {
        "source": {"metadata_csv": "tiny/meta.csv", "video_dir": "tiny/videos", "download": False},
        "sample": {"size": len(videos), "population": len(videos)},
        "clips": {"encoder": {"preset": "ultrafast"}},
    }
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    return work / "tiny.yaml"


def snakemake_in(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        SNAKEMAKE + ["--configfile", "config.yaml", "tiny.yaml", "--cores", "2", *args],
        cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=900,
    )


def test_a_periodic_id_does_not_abort_the_dag(tmp_path: Path, make_video) -> None:
    from conftest import copy_workflow

    from tav_pipeline.source import video_key

    work = copy_workflow(tmp_path / "wf")
    tiny_corpus(work, {ODD_ID: make_video("two_scenes", [("pattern", 5), ("fractal", 5)]), "plainID0001": None})
    proc = snakemake_in(work, "results/sample.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Building the DAG past the sample checkpoint is where the periodic ID used to abort the run.
    proc = snakemake_in(work, "-n", "results/rejects.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "PeriodicWildcardError" not in out and "periodically repeated" not in out
    key = video_key(ODD_ID)
    assert key != ODD_ID and f"results/videos/{key}.json" in out
    assert "results/videos/plainID0001.json" in out


@pytest.mark.slow
def test_bad_clips_become_rejects_and_get_no_keyframes(tmp_path: Path, make_video) -> None:
    """Real run to rejects.csv: a source that no longer decodes when its clip is cut is an
    extract_clip reject, a clip that fails validation gets no keyframes, and the run goes on."""
    from conftest import copy_workflow

    from tav_pipeline.demo import DemoConfig, DemoVideo
    from tav_pipeline.demo import make_video as make_demo_video
    from tav_pipeline.source import video_key

    work = copy_workflow(tmp_path / "wf")
    dim = make_demo_video(DemoVideo("dim", (("ember", 5.0), ("ash", 5.0)), "", "below_threshold"), tmp_path,
                          DemoConfig(width=160, height=120))
    good = make_video("two_scenes", [("pattern", 5), ("fractal", 5)])
    tiny_corpus(work, {ODD_ID: good, "dim_cut_01": dim, "goes_bad_1": good})
    proc = snakemake_in(work, "results/cuts/goes_bad_1.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    source = work / "tiny" / "videos" / "goes_bad_1.mp4"
    source.write_bytes(source.read_bytes()[:2000])  # the file breaks after its cuts were found
    proc = snakemake_in(work, "results/rejects.csv")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    results = work / "results"
    with (results / "rejects.csv").open() as handle:
        rejects = {row["video"]: row for row in csv.DictReader(handle)}
    odd = video_key(ODD_ID)
    assert set(rejects) == {"dim_cut_01", "goes_bad_1"}
    assert (rejects["goes_bad_1"]["stage"], rejects["goes_bad_1"]["reason"]) == ("extract_clip", "unreadable")
    assert (rejects["dim_cut_01"]["stage"], rejects["dim_cut_01"]["reason"]) == ("validate_clip", "below_threshold")
    sidecar = json.loads((results / "clips" / "goes_bad_1.json").read_text())
    assert (sidecar["status"], sidecar["reason"], sidecar["clip"]) == ("rejected", "unreadable", "")
    assert (results / "clips" / "goes_bad_1.mp4").stat().st_size == 0  # the placeholder
    assert json.loads((results / "validation" / "goes_bad_1.json").read_text())["reason"] == "clip_rejected"
    # keyframes only for the clip that passed validation; the others' records say why not
    records = {p.stem: json.loads(p.read_text()) for p in (results / "keyframes").glob("*.json")}
    assert {v for v, r in records.items() if r["status"] == "ok"} == {odd}
    assert records["dim_cut_01"]["reason"] == "validation_failed" and records["goes_bad_1"]["reason"] == "clip_rejected"
    assert [p.name for p in (results / "keyframes").rglob("*.png") if p.parent.name != odd] == []
    assert sorted(p.name for p in (results / "keyframes" / odd).glob("*.png")) == ["scene1.png", "scene2.png"]


# What parsing the workflow may not load: the libraries of the rules' own envs. (pandas is left out
# of the dry run because Snakemake's SLURM executor plugin imports it; the modules the rule files
# import are checked for it below.)
PARSE_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("imported while the workflow is parsed: " + name)
        return None
sys.meta_path.insert(0, Block())
"""


def test_parsing_the_workflow_loads_no_rule_library(tmp_path: Path) -> None:
    """The Snakefile runs in Snakemake's own environment (`--sdm conda` puts each rule in its env):
    the package modules the rule files import must not pull in cv2, av, torch, pandas and the like,
    so a dry run of the shipped config and of the demo profile works with them blocked."""
    from conftest import copy_workflow

    work = copy_workflow(tmp_path / "wf")
    heavy = ["cv2", "av", "torch", "torchvision", "matplotlib", "transformers", "diffusers", "scenedetect", "vbench"]
    run = PARSE_BLOCKER.format(blocked=set(heavy)) + "from snakemake.cli import main\nsys.argv = ['snakemake', *sys.argv[1:]]\nmain()\n"
    for args in (["-n", "--cores", "8", "tables_and_report"], ["-n", "--profile", "profiles/demo"]):
        proc = subprocess.run([sys.executable, "-c", run, *args], cwd=work, capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0 and "This was a dry-run" in proc.stdout, (args, (proc.stdout + proc.stderr)[-3000:])
    files = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
    imports = [m for f in files for m in re.findall(r"^\s*from (tav_pipeline[\w.]*) import (\w+)", f.read_text(), re.M)]
    modules = sorted({f"{m}.{name}" if m == "tav_pipeline" else m for m, name in imports})
    assert len(modules) >= 8
    probe = PARSE_BLOCKER.format(blocked={*heavy, "pandas"}) + "".join(f"import {m}\n" for m in modules)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
