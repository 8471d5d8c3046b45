"""envs/: one pinned conda env per rule (`snakemake --sdm conda`).

No conda channel is reachable from these machines, so the envs are checked as files: each parses,
names its channels and pins exact versions; every rule of the workflow (under each training
backend) names one; and the pip environment that the tests run in (CI's, from
envs/requirements.txt) has the versions that each env pins, wherever the two hold the same package.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
ENV_FILES = sorted(ENVS.glob("*.yaml"))
LIST_RULES = ROOT / "tests" / "slurm" / "list_rules.py"

# The envs the issue asks for (file stems): video tools, captioning, both trainers, VBench, report.
EXPECTED = {"video", "captions", "train-opensora", "train-diffusers", "vbench", "report"}
# Envs that carry their own stack, unlike CI's on purpose: Open-Sora-Plan v1.3.1's trainer needs
# these exact versions and a Python from 3.8 to 3.11. CI's environment is not held to their pins.
OWN_STACK = {
    "train-opensora": {
        "torch": "2.1.0",
        "diffusers": "0.30.2",
        "transformers": "4.44.2",
        "deepspeed": "0.12.6",
        "accelerate": "0.34.0",
    },
}
OWN_STACK_PYTHON = {"train-opensora": ((3, 8), (3, 11))}
# conda-forge names whose PyPI distribution is named differently.
CONDA_TO_PYPI = {"pytorch": "torch", "py-opencv": "opencv-python", "pytorch-lightning": "pytorch-lightning"}

CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:::)?\s*(?P<op>==|=)\s*(?P<version>[^=\s]+)(?:=(?P<build>\S+))?$")
VERSION = re.compile(r"^\d+(\.\d+)+([a-z]+\d*)?(\.post\d+)?$")
GIT_PINNED = re.compile(r"^git\+\S+@[0-9a-f]{40}(#egg=\S+)?$")


def load(env: Path) -> dict[str, Any]:
    data = yaml.safe_load(env.read_text())
    assert isinstance(data, dict), f"{env.name}: not a mapping"
    return data


def conda_deps(data: dict[str, Any]) -> list[str]:
    return [d for d in data.get("dependencies", []) if isinstance(d, str)]


def pip_deps(data: dict[str, Any]) -> list[str]:
    return [p for d in data.get("dependencies", []) if isinstance(d, dict) for p in d.get("pip", [])]


def conda_pins(data: dict[str, Any]) -> dict[str, str]:
    """conda package name -> pinned version."""
    pins = {}
    for dep in conda_deps(data):
        match = CONDA_SPEC.match(dep.strip())
        if match:
            pins[match["name"].lower()] = match["version"]
    return pins


def pip_pins(data: dict[str, Any]) -> dict[str, str]:
    """PyPI distribution (canonical name) -> pinned version, for `name==version` lines."""
    pins = {}
    for line in pip_deps(data):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def post_deploy_installs(env: Path) -> list[str]:
    """Requirements that the env's post-deploy script installs with pip."""
    script = env.with_name(env.stem + ".post-deploy.sh")
    if not script.exists():
        return []
    reqs = []
    for line in script.read_text().splitlines():
        line = line.split("#")[0].strip()
        if re.search(r"\bpip\s+install\b", line):
            words = shlex.split(line)
            reqs += [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    return reqs


def installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def env_id(env: Path) -> str:
    return env.stem


def test_the_issues_envs_are_there() -> None:
    assert EXPECTED <= {e.stem for e in ENV_FILES}, f"missing: {sorted(EXPECTED - {e.stem for e in ENV_FILES})}"


@pytest.mark.parametrize("env", ENV_FILES, ids=env_id)
def test_env_parses_and_names_its_channels(env: Path) -> None:
    data = load(env)
    assert isinstance(data.get("name"), str) and data["name"], f"{env.name}: no name"
    channels = data.get("channels")
    assert isinstance(channels, list) and channels and all(isinstance(c, str) and c for c in channels), (
        f"{env.name}: name the channels (e.g. conda-forge), so the env resolves the same everywhere"
    )
    deps = data.get("dependencies")
    assert isinstance(deps, list) and deps, f"{env.name}: no dependencies"
    for dep in deps:
        assert isinstance(dep, str) or (isinstance(dep, dict) and set(dep) == {"pip"}), f"{env.name}: {dep!r}"
    assert "python" in conda_pins(data), f"{env.name}: pin python"


@pytest.mark.parametrize("env", ENV_FILES, ids=env_id)
def test_env_pins_exact_versions(env: Path) -> None:
    data = load(env)
    loose = []
    for dep in conda_deps(data):
        match = CONDA_SPEC.match(dep.strip())
        if not match or not VERSION.match(match["version"]):
            loose.append(dep)
        elif match["name"] != "python" and match["op"] == "=" and match["version"].count(".") < 1:
            loose.append(dep)  # `=2` is 2.*
    for line in pip_deps(data):
        if line.startswith("-e ") or line.startswith("--"):
            # the package itself (editable, from the checkout) or a pip option such as an index
            if line.startswith("-e "):
                assert (env.parent / line[3:].strip()).resolve().is_dir(), f"{env.name}: {line}"
            continue
        if GIT_PINNED.match(line):
            continue
        try:
            specs = list(Requirement(line).specifier)
        except InvalidRequirement:
            loose.append(line)
            continue
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            loose.append(line)
    for req in post_deploy_installs(env):
        if not GIT_PINNED.match(req) and not re.match(r"^[A-Za-z0-9_.\-\[\],]+==[0-9][^*]*$", req):
            loose.append(f"{req} (post-deploy)")
    assert not loose, f"{env.name}: not pinned to an exact version: {loose}"


@pytest.mark.parametrize("env", [e for e in ENV_FILES if e.stem not in OWN_STACK], ids=env_id)
def test_ci_environment_has_the_envs_versions_where_they_overlap(env: Path) -> None:
    data = load(env)
    python = conda_pins(data)["python"]
    assert f"{sys.version_info.major}.{sys.version_info.minor}".startswith(python) or python.startswith(
        f"{sys.version_info.major}.{sys.version_info.minor}."
    ), f"{env.name}: python={python}, CI runs {sys.version.split()[0]}"
    expected: dict[str, str] = {}
    for name, version in conda_pins(data).items():
        if name not in ("python", "pip"):
            expected[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = version
    expected.update(pip_pins(data))
    for req in post_deploy_installs(env):
        if "==" in req:
            name, version = req.split("==", 1)
            expected[canonicalize_name(name.split("[")[0])] = version
    compared, different = [], []
    for dist, version in sorted(expected.items()):
        have = installed(dist)
        if have is None:
            continue
        compared.append(dist)
        if not SpecifierSet(f"=={version}").contains(have, prereleases=True):
            different.append(f"{dist}: env pins {version}, CI has {have}")
    assert compared, f"{env.name}: no package in common with CI's environment, nothing was compared"
    assert not different, f"{env.name}: {different}"


@pytest.mark.parametrize("env", [e for e in ENV_FILES if e.stem in OWN_STACK], ids=env_id)
def test_own_stack_envs_pin_their_trainers_versions(env: Path) -> None:
    data = load(env)
    pins = {canonicalize_name(CONDA_TO_PYPI.get(k, k)): v for k, v in conda_pins(data).items()}
    pins.update(pip_pins(data))
    for dist, version in OWN_STACK[env.stem].items():
        assert pins.get(canonicalize_name(dist)) == version, f"{env.name}: {dist} must be {version}, is {pins.get(dist)}"
    low, high = OWN_STACK_PYTHON[env.stem]
    python = tuple(int(x) for x in conda_pins(data)["python"].split(".")[:2])
    assert low <= python <= high, f"{env.name}: python {python} outside {low}..{high}"


# --- every rule names one ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules_by_variant() -> dict[str, list[dict[str, Any]]]:
    """The workflow's rules under the paper's config and the demo's, each under every training
    backend (tests/slurm/list_rules.py): rules defined for one backend only are seen too."""
    proc = subprocess.run(
        [sys.executable, str(LIST_RULES), str(ROOT), "--variants"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_every_rule_names_a_pinned_env_in_envs(rules_by_variant: dict[str, list[dict[str, Any]]]) -> None:
    checked, problems = set(), []
    for label, rules in rules_by_variant.items():
        for rule in rules:
            if rule["action"] is None:  # a target rule such as `all`: nothing runs
                continue
            checked.add(rule["name"])
            where = f"{rule['name']} ({label})"
            if rule["action"] == "run":
                problems.append(f"{where}: a run: block can't use a conda env; use script:")
            elif rule["conda"] is None:
                problems.append(f"{where}: no conda:")
            elif not str(rule["conda"]).startswith("/") or Path(rule["conda"]).parent != ENVS.resolve():
                problems.append(f"{where}: conda env {rule['conda']} is not a file in envs/")
            elif not Path(rule["conda"]).is_file():
                problems.append(f"{where}: {rule['conda']} does not exist")
    assert {"detect_cuts", "caption_scenes", "build_tav"} <= checked
    assert not problems, "\n".join(problems)
