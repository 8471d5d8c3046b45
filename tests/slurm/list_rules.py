"""Print the workflow's rules as JSON: name, action, conda env (resolved path), resources.

    python tests/slurm/list_rules.py REPO [--configfile FILE ...] [--config JSON]
    python tests/slurm/list_rules.py REPO --variants    # {variant: rules} for every variant

Loads the Snakefile through Snakemake's API (parsing only: no DAG, no jobs, no log file), so the
tests see the rules that Snakemake sees, including those added to rules/*.smk later. Rules can
depend on config (the training backend picks the trainer's rules): --variants loads the paper's
config and the demo's, each under every training backend that the schema allows. Runs as a
subprocess of the tests because loading a workflow changes the working directory and logging.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings


def plain(value: object) -> object:
    """A resource value as JSON: numbers and strings as they are, callables by type name."""
    if getattr(value, "is_evaluable", lambda: False)():
        return "<callable>"
    value = getattr(value, "value", value)
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return f"<{type(value).__name__}>"


def action(rule: object) -> str | None:
    """How the rule does its work: shell, script, notebook, wrapper, cwl, run; None for none."""
    if getattr(rule, "norun", False):
        return None
    for kind, attr in (("shell", "shellcmd"), ("script", "script"), ("notebook", "notebook"),
                       ("wrapper", "wrapper"), ("cwl", "cwl")):
        if getattr(rule, attr, None):
            return kind
    return "run"


def describe(repo: Path, configfiles: list[Path], config: dict[str, object]) -> list[dict[str, object]]:
    """The rules that the workflow defines under these config files and overrides (rules can be
    conditional on config, e.g. on the training backend)."""
    output = OutputSettings(quiet={"all"}, enable_file_logging=False)  # type: ignore[arg-type]
    settings = ConfigSettings(config=config, configfiles=[p.resolve() for p in configfiles])
    with SnakemakeApi(output) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=settings,
            snakefile=repo / "Snakefile",
            workdir=repo,
        )
        workflow = workflow_api._workflow  # the parsed workflow; the API has no public accessor
        rules = []
        for rule in workflow.rules:
            conda = rule.conda_env
            if isinstance(conda, (str, Path)):
                conda = str((Path(rule.basedir) / conda).resolve())
            elif conda is not None:
                conda = f"<{type(conda).__name__}>"
            rules.append(
                {
                    "name": rule.name,
                    "action": action(rule),
                    "conda": conda,
                    "resources": {
                        name: plain(value)
                        for name, value in rule.resources.items()
                        if not name.startswith("_")
                    },
                }
            )
    return rules


def variants(repo: Path) -> list[tuple[str, list[Path], dict[str, object]]]:
    """(label, config files, overrides) for the paper's config and the demo's, under every
    training backend in the schema."""
    bases = [
        ("paper", [repo / "config.yaml"]),
        ("demo", [repo / "config.yaml", repo / "profiles" / "demo" / "overrides.yaml"]),
    ]
    schema = yaml.safe_load((repo / "rules" / "schemas" / "config.schema.yaml").read_text())
    backend = schema.get("properties", {}).get("train", {}).get("properties", {}).get("backend", {})
    found = []
    for label, files in bases:
        found.append((label, files, {}))
        chosen = backend.get("default")
        for path in files:  # the backend these files choose (the last one that names it)
            train = (yaml.safe_load(path.read_text()) or {}).get("train") or {}
            chosen = train.get("backend", chosen)
        for other in backend.get("enum", []):
            if other != chosen:
                found.append((f"{label}+{other}", files, {"train": {"backend": other}}))
    return found


def describe_variants(repo: Path) -> dict[str, list[dict[str, object]]]:
    found = {}
    for label, files, config in variants(repo):
        argv = [sys.executable, __file__, str(repo), "--configfile", *map(str, files), "--config", json.dumps(config)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{label}: {proc.stderr[-4000:]}")
        found[label] = json.loads(proc.stdout)
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--configfile", type=Path, nargs="*", default=[])
    parser.add_argument("--config", type=json.loads, default={}, help="overrides, as JSON")
    parser.add_argument("--variants", action="store_true", help="every config variant (see above)")
    args = parser.parse_args()
    if args.variants:
        print(json.dumps(describe_variants(args.repo.resolve()), indent=1))
    else:
        print(json.dumps(describe(args.repo.resolve(), args.configfile, args.config), indent=1))
