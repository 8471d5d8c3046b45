"""envs/: one pinned conda env per rule (`snakemake --sdm conda`).

No conda channel is reachable from these machines, so the envs are checked as files: each parses,
names its channels and pins exact versions; every rule of the workflow (under each training
backend) names one; each installs tav-pipeline on a Python its `requires-python` accepts, with
every requirement of the package pinned; and the pip environment that the tests run in (CI's, from
envs/requirements.txt) has the versions that each env pins, wherever the two hold the same package;
an env with its own stack (Open-Sora-Plan's) instead pins what its GPU run recorded, on a Python
that its torch has wheels for.

Against the package registry (PyPI), pip resolves each env's pip section for that env's Python:
skipped when the registry cannot be reached, except under CI (CI set, e.g. CI=true), where that fails.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
ENV_FILES = sorted(ENVS.glob("*.yaml"))
PYPROJECT = ROOT / "pyproject.toml"
LIST_RULES = ROOT / "tests" / "slurm" / "list_rules.py"

# The envs the issue asks for (file stems): video tools, captioning, both trainers, VBench, report.
EXPECTED = {"video", "captions", "train-opensora", "train-diffusers", "vbench", "report"}
# Envs that carry their own stack, unlike CI's on purpose: the versions that Open-Sora-Plan
# v1.3.1's trainer and sampler ran with on the GPU, as that run recorded them ("versions" of its
# JSON). CI's environment is not held to their pins.
OWN_STACK = {"train-opensora": ROOT / "benchmarks" / "opensora_h200.json"}
# Keys of a run's "versions" that are not PyPI distributions.
NOT_DISTRIBUTIONS = {"python", "cuda", "gpu"}
# The Pythons that torch's Linux wheels on PyPI cover, per torch version (`pip index versions torch
# --only-binary=:all: --python-version X` lists 2.11.0 for 3.10 to 3.14, not for 3.9 or 3.15).
TORCH_WHEEL_PYTHONS = {"2.11.0": SpecifierSet(">=3.10,<3.15")}
# conda-forge names whose PyPI distribution is named differently.
CONDA_TO_PYPI = {"pytorch": "torch", "py-opencv": "opencv-python", "pytorch-lightning": "pytorch-lightning"}

CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:::)?\s*(?P<op>==|=)\s*(?P<version>[^=\s]+)(?:=(?P<build>\S+))?$")
VERSION = re.compile(r"^\d+(\.\d+)+([a-z]+\d*)?(\.post\d+)?$")
GIT_PINNED = re.compile(r"^git\+\S+@[0-9a-f]{40}(#egg=\S+)?$")
# Pins that the registry holds as source archives only. pip reads a source archive's requirements
# by running its build (deepspeed's alone takes 10 s and more), so the resolve test asks pip's index
# finder whether the pinned version exists for the env's Python instead; every other pin must come
# as a wheel for that Python (pip's --only-binary), which is also how a Python that a pin does not
# support shows, rather than as a long build from source.
SDIST_ONLY = {"deepspeed", "pytorchvideo", "test-tube", "moviepy", "openai-clip"}
PIP_TIMEOUT_S = 300


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


def project_metadata() -> tuple[SpecifierSet, list[Requirement]]:
    """pyproject.toml's requires-python and the package's requirements."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return SpecifierSet(project["requires-python"]), [Requirement(r) for r in project["dependencies"]]


def installs_project(env: Path, data: dict[str, Any]) -> bool:
    """Whether the env's pip section installs this checkout (`-e ../`)."""
    for line in pip_deps(data):
        path = line[3:].strip() if line.startswith("-e ") else line.strip()
        if path.startswith((".", "/")) and (env.parent / path).resolve() == ROOT:
            return True
    return False


def marker_environment(python: str) -> dict[str, str]:
    """Environment markers of the env: this machine's platform (Linux x86-64, as the envs'), the
    env's Python. A conda pin `python=3.11` is read as 3.11.0, the lowest it can take."""
    release = Version(python).release
    env = dict(default_environment())
    env.update(
        python_version=f"{release[0]}.{release[1]}",
        python_full_version=".".join(str(n) for n in (*release, 0, 0)[:3]),
        extra="",
    )
    return env


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


def recorded_versions(record: Path) -> dict[str, str]:
    """A GPU run's "versions": name -> version, "absent" for what the machine did not have."""
    versions = json.loads(record.read_text())["versions"]
    assert isinstance(versions, dict) and versions, f"{record}: no versions"
    return {str(k): str(v) for k, v in versions.items()}


@pytest.mark.parametrize("env", [e for e in ENV_FILES if e.stem in OWN_STACK], ids=env_id)
def test_own_stack_envs_pin_the_versions_that_ran(env: Path) -> None:
    data = load(env)
    record = OWN_STACK[env.stem]
    ran = recorded_versions(record)
    pins = {canonicalize_name(CONDA_TO_PYPI.get(k, k)): v for k, v in conda_pins(data).items()}
    pins.update(pip_pins(data))
    different = []
    for name, version in sorted(ran.items()):
        if name in NOT_DISTRIBUTIONS or version == "absent":
            continue
        if pins.get(canonicalize_name(name)) != version:
            different.append(f"{name}: ran {version}, env pins {pins.get(canonicalize_name(name))}")
    assert not different, f"{env.name} against {record.name}: {different}"
    python = conda_pins(data)["python"]
    ran_python = Version(ran["python"]).release[:2]
    assert Version(python).release[:2] == ran_python, (
        f"{env.name}: python={python}, the run used Python {ran['python']}"
    )


@pytest.mark.parametrize("env", [e for e in ENV_FILES if e.stem in OWN_STACK], ids=env_id)
def test_own_stack_envs_python_has_their_torch(env: Path) -> None:
    data = load(env)
    torch = pip_pins(data).get("torch")
    assert torch in TORCH_WHEEL_PYTHONS, (
        f"{env.name}: torch=={torch}: add the Pythons its wheels cover to TORCH_WHEEL_PYTHONS"
    )
    python = conda_pins(data)["python"]
    stack = TORCH_WHEEL_PYTHONS[torch]
    requires_python, _ = project_metadata()
    assert stack.contains(python), f"{env.name}: python={python}, torch {torch} has wheels for Python {stack}"
    assert requires_python.contains(python), (
        f"{env.name}: python={python}, but the env installs tav-pipeline, which requires Python {requires_python}"
    )


# --- every env installs the package on a Python it supports, with its requirements pinned -------


@pytest.mark.parametrize("env", ENV_FILES, ids=env_id)
def test_env_python_satisfies_the_projects_requires_python(env: Path) -> None:
    data = load(env)
    # every rule's script imports tav_pipeline, so every env installs it
    assert installs_project(env, data), f"{env.name}: the pip section does not install tav-pipeline (`-e ../`)"
    requires_python, _ = project_metadata()
    python = conda_pins(data)["python"]
    assert requires_python.contains(python), (
        f"{env.name}: python={python}, but pyproject.toml's requires-python is '{requires_python}': "
        "pip refuses to install tav-pipeline there ('requires a different Python')"
    )


@pytest.mark.parametrize("env", ENV_FILES, ids=env_id)
def test_env_pins_the_projects_requirements(env: Path) -> None:
    data = load(env)
    pins = pip_pins(data)
    markers = marker_environment(conda_pins(data)["python"])
    _, requirements = project_metadata()
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(markers):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req}: not pinned, so installing tav-pipeline takes whatever version is newest")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req}: the env pins {pinned}")
    assert not problems, f"{env.name}: tav-pipeline's requirements: {problems}"


# --- each env's pip section resolves for its Python, against the registry ----------------------


def pip_index_url() -> str:
    """The index that pip reads: PIP_INDEX_URL, else pip's configuration, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].split()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, timeout=60
    )
    found = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if re.match(r"^(global|install)\.index-url=", line)
    )
    url = found.get("install.index-url") or found.get("global.index-url") or "'https://pypi.org/simple'"
    return url.strip().strip("'\"")


@pytest.fixture(scope="module")
def registry() -> str:
    """The package index's URL; skips (fails under CI) when it cannot be reached."""
    url = pip_index_url()
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/pip/", timeout=20, context=context):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = f"the package registry {url} cannot be reached ({exc}): the envs' pip sections were not resolved"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{reason}; CI must resolve them", pytrace=False)
        pytest.skip(reason)
    return url


@dataclass
class Resolution:
    """What pip made of one env's pins for the env's Python."""

    python: str
    errors: list[str] = field(default_factory=list)
    # name -> metadata (pip's installation report) of every pin that comes as a wheel
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def env_requirements(env: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(pip section, post-deploy installs): canonical name -> pinned version."""
    data = load(env)
    post_deploy = {}
    for req in post_deploy_installs(env):
        if "==" in req:
            name, version = req.split("==", 1)
            post_deploy[canonicalize_name(name.split("[")[0])] = version
    return pip_pins(data), post_deploy


def pip_quiet_errors(stderr: str) -> str:
    """pip's stderr without its notes on find-links/index folders that lack a package."""
    return "\n".join(line for line in stderr.splitlines() if "it is neither a file nor a directory" not in line)


def resolve_wheels(python: str, pins: dict[str, str], into: Resolution) -> None:
    """pip's resolver, dry run, on the pins for a foreign Python: --no-deps, wheels only."""
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
        "--only-binary=:all:", "--python-version", python, "--quiet", "--report", "-",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        into.errors.append(f"pip install --dry-run --only-binary=:all:: {pip_quiet_errors(proc.stderr)[-3000:]}")
        return
    for item in json.loads(proc.stdout)["install"]:
        into.metadata[canonicalize_name(item["metadata"]["name"])] = item["metadata"]


def find_source_archive(python: str, name: str, version: str, into: Resolution) -> None:
    """pip's index finder: the versions of `name` that it would install for the Python."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", name, "--pre", "--json", "--python-version", python]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        into.errors.append(f"pip index versions {name}: {pip_quiet_errors(proc.stderr)[-1000:]}")
        return
    versions = {Version(v) for v in json.loads(proc.stdout)["versions"]}
    if Version(version) not in versions:
        into.errors.append(f"{name}=={version}: no distribution for Python {python}")


@pytest.fixture(scope="module")
def resolutions(registry: str, request: pytest.FixtureRequest) -> dict[str, Resolution]:
    """The envs whose resolve test runs, resolved at once: one pip process for an env's wheels,
    one per source-only pin."""
    selected = {
        item.callspec.params["env"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_env_pip_section_resolves_for_its_python"
    }
    results: dict[str, Resolution] = {}
    jobs: list[Callable[[], None]] = []
    for env in sorted(selected):
        python = conda_pins(load(env))["python"]
        pip_section, post_deploy = env_requirements(env)
        pins = {**pip_section, **post_deploy}
        res = results[env.stem] = Resolution(python)
        wheels = {n: v for n, v in pins.items() if n not in SDIST_ONLY}
        jobs.append(lambda p=python, w=wheels, r=res: resolve_wheels(p, w, r))
        for name, version in pins.items():
            if name in SDIST_ONLY:
                jobs.append(lambda p=python, n=name, v=version, r=res: find_source_archive(p, n, v, r))
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return results


@pytest.mark.parametrize("env", ENV_FILES, ids=env_id)
def test_env_pip_section_resolves_for_its_python(env: Path, resolutions: dict[str, Resolution]) -> None:
    res = resolutions[env.stem]
    assert not res.errors, f"{env.name} (Python {res.python}): " + "\n".join(res.errors)
    pip_section, post_deploy = env_requirements(env)
    pins = {**pip_section, **post_deploy}
    got = {name: meta["version"] for name, meta in res.metadata.items()}
    want = {name: version for name, version in pins.items() if name not in SDIST_ONLY}
    assert {n: Version(v) for n, v in got.items()} == {n: Version(v) for n, v in want.items()}, (
        f"{env.name}: pip chose {got}, the env pins {want}"
    )
    # conda installs the pip section with one `pip install`, dependencies included: what a pinned
    # package requires of another pinned package must hold. (Post-deploy installs go in with
    # --no-deps on purpose, so their declared requirements are not held against the pins.)
    markers = marker_environment(res.python)
    conflicts = []
    for name, meta in sorted(res.metadata.items()):
        if name not in pip_section:
            continue
        for line in meta.get("requires_dist") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(markers):
                continue
            pinned = pip_section.get(canonicalize_name(req.name))
            if pinned is not None and not req.specifier.contains(pinned, prereleases=True):
                conflicts.append(f"{name}=={meta['version']} requires {req}, the env pins {pinned}")
    assert not conflicts, f"{env.name}: " + "; ".join(conflicts)


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
