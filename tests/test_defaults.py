"""One source of defaults: every typed config section agrees with the schema.

The schema (``rules/schemas/config.schema.yaml``) holds each default; the dataclasses that turn a
config section into a typed object (each has a ``from_dict``) carry defaults too, for code that
builds them without the workflow. This test finds every such class in the package, learns the
section it reads from the :class:`ConfigError` its ``from_dict`` raises for an unknown key (which
names ``section.key``), and checks that each field default equals the schema's default for the
key of the same name, nested sections (dataclass or mapping fields) included.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import tav_pipeline
from tav_pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "rules" / "schemas" / "config.schema.yaml").read_text())
PROBE = "__not_a_key__"
MISSING = object()

# Disagreements found and not yet resolved, by section: the fields whose dataclass default differs
# from the schema's. A section's test fails on any other disagreement, and also once one of these
# is resolved (then drop it here).
KNOWN: dict[str, set[str]] = {
    # SegmentsConfig is evaluate.segments merged over cuts: its mode defaults to cuts.mode's default
    # (paper), which the schema writes as null (= cuts.mode)
    "evaluate.segments": {"evaluate.segments.mode"},
}


def typed_sections() -> dict[str, type]:
    """Every dataclass of the package with its own ``from_dict``, by the config section it reads."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(tav_pipeline.__path__, "tav_pipeline."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__):
                continue
            if "from_dict" not in vars(cls):
                continue
            params = list(inspect.signature(cls.from_dict).parameters)
            args: list[Any] = ["name", {PROBE: 1}] if params[0] == "name" else [{PROBE: 1}]
            with pytest.raises(ConfigError) as err:
                cls.from_dict(*args)
            key = err.value.key
            assert key.endswith(f".{PROBE}"), f"{cls.__qualname__}.from_dict names {key!r}, not section.{PROBE}"
            section = key.removesuffix(f".{PROBE}")
            assert section not in found, f"{section}: {found[section].__qualname__} and {cls.__qualname__}"
            found[section] = cls
    return found


SECTIONS = typed_sections()


def schema_node(section: str) -> dict[str, Any] | None:
    """The schema object of a dotted section; a name no property has steps into
    ``additionalProperties`` (a map's value) or ``items`` (a list's element)."""
    node: dict[str, Any] = SCHEMA
    for part in section.split("."):
        if node.get("type") == "array":
            node = node["items"]
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    if node.get("type") == "array":
        node = node["items"]
    return node


def schema_default(node: dict[str, Any]) -> Any:
    """A key's default: its ``default``, or for an object without one its properties' defaults."""
    if node.get("type") == "object" and "properties" in node:
        # as validation fills it: the object's default, then each property's default
        out = dict(node.get("default", {}))
        for k, v in node["properties"].items():
            if k not in out and (sub := schema_default(v)) is not MISSING:
                out[k] = sub
        return out
    return node.get("default", MISSING)


def normalise(value: Any) -> Any:
    """Compare as YAML would hold it: tuples as lists, dataclasses and mappings as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: normalise(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, enum.Enum):
        return normalise(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def disagreements(cls: type, node: dict[str, Any], where: str) -> list[str]:
    """``where.field: dataclass X, schema Y`` for each field whose default differs from the
    schema's; nested dataclass fields are compared field by field."""
    out = []
    props = node.get("properties", {})
    for f in dataclasses.fields(cls):
        if f.name not in props:
            continue
        ours = field_default(f)
        if ours is MISSING:
            continue  # no second default: the schema's is the only one
        sub = props[f.name]
        if isinstance(ours, Mapping) and not ours and "properties" in sub:
            continue  # an empty mapping: the sub-section's own class (tested as its section) fills it
        if dataclasses.is_dataclass(ours) and "properties" in sub:
            out += disagreements(type(ours), sub, f"{where}.{f.name}")
            continue
        theirs = schema_default(sub)
        if theirs is MISSING:
            continue  # the package holds this default alone (sample.categories)
        if isinstance(ours, tuple) and isinstance(theirs, dict):
            # a mapping held as a tuple in the schema's key order (cuts.weights: hue, saturation, value)
            if normalise(ours) != normalise(list(theirs.values())):
                out.append(f"{where}.{f.name}: dataclass {ours!r}, schema {theirs!r}")
        elif normalise(ours) != normalise(theirs):
            out.append(f"{where}.{f.name}: dataclass {ours!r}, schema {theirs!r}")
    return out


def test_every_section_of_the_schema_is_read_by_a_typed_config() -> None:
    """Each top-level section has its class (so no section escapes the test below)."""
    typed_roots = {s.split(".")[0] for s in SECTIONS}
    untyped = set(SCHEMA["properties"]) - typed_roots - {"results"}
    assert not untyped, f"sections no typed config reads: {sorted(untyped)}"
    assert len(SECTIONS) >= 15


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_dataclass_defaults_are_the_schemas(section: str) -> None:
    cls = SECTIONS[section]
    node = schema_node(section)
    assert node is not None, f"{cls.__qualname__} reads {section}, which the schema does not have"
    if "properties" not in node and node.get("additionalProperties", True) is not False:
        # a free-form mapping in the schema (cuts.robust): the dataclass holds its defaults alone
        return
    shared = {f.name for f in dataclasses.fields(cls)} & set(node.get("properties", {}))
    assert shared, f"{cls.__qualname__} has no field named like a key of {section}"
    found = disagreements(cls, node, section)
    assert {d.split(":")[0] for d in found} == KNOWN.get(section, set()), found


def test_defaults_written_in_two_sections_agree() -> None:
    """Values one section repeats from another: the robust detector's cut threshold is the paper
    detector's."""
    robust = {f.name: field_default(f) for f in dataclasses.fields(SECTIONS["cuts.robust"])}
    assert robust["cut_threshold"] == schema_default(schema_node("cuts.threshold") or {})
