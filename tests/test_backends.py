"""The model backends (tav_pipeline.backends): the registry, what the workflow asks of each
backend, and the import graph of the training and generation modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tav_pipeline
from tav_pipeline import backends
from tav_pipeline.backends import Backend, GenerationJob, TrainJob
from tav_pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "rules" / "schemas" / "config.schema.yaml"
PACKAGE = Path(tav_pipeline.__file__).parent


def test_the_schema_offers_exactly_the_registered_backends() -> None:
    train = yaml.safe_load(SCHEMA.read_text())["properties"]["train"]
    assert sorted(train["properties"]["backend"]["enum"]) == backends.names() == ["diffusers", "opensora"]
    for name, b in backends.registry().items():
        assert b.name == name
        assert name in train["properties"], f"train.{name}: the backend's own section"
        assert (ROOT / "envs" / f"{b.env}.yaml").is_file()
    rules = [b.training_rule for b in backends.registry().values()]
    assert sorted(rules) == ["train_model", "train_opensora"]  # log and benchmark folders keep their names


def test_an_unknown_backend_names_the_config_key() -> None:
    with pytest.raises(ConfigError, match="train.backend.*'nope'.*diffusers, opensora"):
        backends.backend("nope")


def test_a_new_backend_is_one_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subpackage defining BACKEND is found by its folder name, with no registry to edit."""
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "class Toy:\n"
        "    name = 'toy'\n"
        "    env = 'train-toy'\n"
        "    training_rule = 'train_toy'\n"
        "    training_outputs = ()\n"
        "    def training_threads(self, num_gpus):\n"
        "        return 3 * num_gpus\n"
        "BACKEND = Toy()\n"
    )
    monkeypatch.setattr(backends, "__path__", [*backends.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "tav_pipeline.backends.toy", raising=False)
    assert backends.names() == ["diffusers", "opensora", "toy"]
    toy = backends.backend("toy")
    assert (toy.training_rule, toy.training_threads(2)) == ("train_toy", 6)
    sys.modules.pop("tav_pipeline.backends.toy", None)


def test_what_the_rules_ask_of_each_backend() -> None:
    train = {
        "diffusers": {"pretrained": "resources/diffusers/CogVideoX-2b", "cache_latents": True, "hub_id": "x/y", "revision": "main"},
        "opensora": {
            "repo": "r", "pretrained": "w/any", "ae_path": "w/vae", "cache_dir": "c", "git_url": "g", "commit": "abc",
            "weights_hub_id": "h/w", "text_encoder_name_1": "google/mt5-xxl",
        },
    }  # fmt: skip
    diffusers, opensora = backends.backend("diffusers"), backends.backend("opensora")
    assert diffusers.training_inputs("res", train) == {"tav": "res/tav.json", "latents": "res/latents/{model}"}
    no_cache = {**train, "diffusers": {**train["diffusers"], "cache_latents": False}}
    assert diffusers.training_inputs("res", no_cache)["latents"] == []
    assert opensora.training_inputs("res", train) == {"data": "res/opensora/data.txt", "annotation": "res/opensora/tav_train.json"}
    assert (diffusers.training_threads(2), opensora.training_threads(2)) == (2, 16)
    assert (diffusers.training_outputs, opensora.training_outputs) == (("losses",), ())
    assert diffusers.model_paths(train) == ["resources/diffusers/CogVideoX-2b"]
    assert opensora.model_paths(train) == ["r", "w/any", "w/vae", "c/models--google--mt5-xxl"]
    assert [(a.key, a.rule) for a in opensora.assets(train, "res")] == [
        ("train.opensora.repo", "fetch_opensora"),
        ("train.opensora.pretrained", "fetch_opensora_weights"),
        ("train.opensora.ae_path", "fetch_opensora_weights"),
        ("train.opensora.text_encoder_name_1", "fetch_opensora_weights"),
    ]
    assert [a.rule for a in diffusers.assets(train, "res")] == ["fetch_diffusers_model"]
    # what generation reads of each section: the pipeline, not the hub id to fetch it from; the
    # sampler's model, not the trainer's dataloader
    assert diffusers.generation_settings(train["diffusers"]) == {"pretrained": "resources/diffusers/CogVideoX-2b", "revision": "main"}
    assert set(opensora.generation_settings({**train["opensora"], "relaunch": "repeat"})) == set(train["opensora"]) - {
        "git_url", "weights_hub_id"
    }
    # a pipeline the workflow builds under results/ (the demo's) is no external asset
    under_results = {**train, "diffusers": {**train["diffusers"], "pretrained": "res/demo/tiny"}}
    assert diffusers.assets(under_results, "res") == []


def test_backend_objects_have_every_member_of_the_protocol() -> None:
    members = [n for n in dir(Backend) if not n.startswith("_")] + list(Backend.__annotations__)
    for b in backends.registry().values():
        assert all(hasattr(b, m) for m in members), b.name
    assert {"train", "generate", "check", "assets", "model_paths", "training_inputs"} <= set(members)
    assert TrainJob.__dataclass_fields__ and GenerationJob.__dataclass_fields__


def test_reading_the_backends_imports_no_torch() -> None:
    """The workflow reads the registry when it parses (and the SLURM profile when it renders)."""
    code = (
        "import sys; from tav_pipeline import backends, assets, generate; "
        "[b.training_rule for b in backends.registry().values()]; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, sorted(sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# Import cycles among the training and generation modules


SCOPE = ("tav_pipeline.generate", "tav_pipeline.backends", "tav_pipeline.train", "tav_pipeline.assets",
         "tav_pipeline.devices", "tav_pipeline.gpus")  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (function bodies included), but not
    under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for n in ast.walk(child)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def cycles(graph: dict[str, set[str]], scope: tuple[str, ...]) -> list[list[str]]:
    """Every cycle of ``graph`` restricted to modules under ``scope`` (a package importing its own
    submodules is not a cycle)."""

    def inside(m: str) -> bool:
        return any(m == s or m.startswith(s + ".") for s in scope)

    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if not inside(nxt) or nxt.startswith(node + "."):
                continue
            if nxt in path:
                found.append([*path[path.index(nxt) :], nxt])
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(m for m in graph if inside(m)):
        visit(start, [start])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"tav_pipeline.generate": {"tav_pipeline.backends.x"}, "tav_pipeline.backends.x": {"tav_pipeline.generate"}}
    assert cycles(graph, SCOPE)
    assert not cycles({"tav_pipeline.backends": {"tav_pipeline.backends.x"}, "tav_pipeline.backends.x": set()}, SCOPE)


def test_no_import_cycle_among_training_and_generation_modules() -> None:
    graph = import_graph()
    assert "tav_pipeline.backends.opensora.sample" in graph["tav_pipeline.backends.opensora"]
    assert cycles(graph, SCOPE) == []
