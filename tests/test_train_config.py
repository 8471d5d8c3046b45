"""The train: / generate: settings: paper defaults, named choices, unknown keys, and the config
schema and config.yaml agreeing with the dataclasses."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tav_pipeline import backends
from tav_pipeline.errors import ConfigError
from tav_pipeline.train import config as train_config
from tav_pipeline.train.config import (
    BaselineModel,
    DiffusersConfig,
    DiffusersSampling,
    GenerateConfig,
    OpenSoraConfig,
    OpenSoraSampling,
    TrainConfig,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "rules" / "schemas" / "config.schema.yaml"


# The paper's post-training settings, as /work/shared/paper/SPEC.md "Post-training (paper
# section 4)" states them, written here once by hand: the defaults, the schema and the shipped
# config.yaml must all hold them.
PAPER_TRAIN = {
    "num_frames": 33,  # "33 frames,
    "height": 256,  # 256x256,
    "width": 256,
    "sample_rate": 1,  # sample rate 1,
    "fps": 8,  # 8 FPS."
    "distributed": "deepspeed",  # "DeepSpeed ZeRO stage 2,
    "zero_stage": 2,
    "num_gpus": 1,  # single process, one H200"
    "batch_size": 1,  # "Batch size 1;
    "learning_rate": 1e-5,  # learning rate 1e-5,
    "lr_scheduler": "constant",  # constant schedule;
    "mixed_precision": "bf16",  # bf16 mixed precision;
    "use_ema": True,  # EMA
    "ema_decay": 0.9999,  # decay 0.9999
    "ema_start_step": 0,  # from step 0;
    "gradient_checkpointing": True,  # gradient checkpointing"
    "snr_gamma": 5.0,  # "SNR-weighted loss with snr_gamma = 5.0;
    "prediction_type": "v_prediction",  # v_prediction."
    "text_drop_prob": 0.1,  # "guidance scale 0.1" (SPEC: the trainer's --cfg, the text-drop probability)
    "epochs": (16, 24, 36),  # "Checkpoints evaluated at epochs 16, 24 and 36."
}
PAPER_OPENSORA = {
    "text_encoder_name_1": "google/mt5-xxl",  # "Text encoder `google/mt5-xxl`;
    "ae": "WFVAEModel_D8_4x8x8",  # video autoencoder WFVAEModel `D8_4x8x8`"
    "sparse1d": True,  # "sparse 1D attention
    "sparse_n": 4,  # with sparse_n = 4;
    "interpolation_scale_t": 1.0,  # temporal and spatial interpolation scales 1.0"
    "interpolation_scale_h": 1.0,
    "interpolation_scale_w": 1.0,
}


def _paper_settings(c: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    return {k: getattr(c, k) for k in PAPER_TRAIN}, {k: getattr(c.opensora, k) for k in PAPER_OPENSORA}


def test_defaults_are_the_papers_section_4() -> None:
    from snakemake.utils import validate

    filled: dict[str, Any] = {}
    validate(filled, str(SCHEMA))  # the schema's defaults
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    for where, c in (
        ("dataclass defaults", TrainConfig()),
        ("schema defaults", TrainConfig.from_dict(filled["train"])),
        ("config.yaml", TrainConfig.from_dict(shipped["train"])),
    ):
        assert _paper_settings(c) == (PAPER_TRAIN, PAPER_OPENSORA), where
        assert c.backend == "opensora", where  # the paper post-trains Open-Sora-Plan v1.3.1
        assert c.effective_learning_rate == 1e-5 and c.global_batch_size == 1, where


@pytest.mark.parametrize(
    "bad",
    [
        {"learnig_rate": 1e-5},
        {"diffusers": {"pretrain": "x"}},
        {"opensora": {"sparse": 4}},
        {"backend": "jax"},
        {"num_frames": 32},
        {"epoch_steps": "epoch"},
        {"epoch_steps": 0},
        {"epochs": [16, 16]},
        {"zero_stage": 3},
        {"height": 250},
        {"model": "a/b"},
        {"opensora": {"relaunch": "always"}},
        {"num_gpus": 0},
        {"lr_scaling": "cubic"},
        {"num_gpus": 2, "distributed": "plain"},
    ],
)
def test_bad_train_settings_raise_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(bad)


def test_bad_generate_settings_raise_config_error() -> None:
    for bad in (
        {"seeds": 1},
        {"diffusers": {"steps": 2}},
        {"opensora": {"method": "DDIM"}},
        {"weights": "best"},
        {"groups": []},
    ):
        with pytest.raises(ConfigError):
            GenerateConfig.from_dict(bad)


def test_epoch_steps_choice_and_previous_epoch() -> None:
    dataset = TrainConfig()
    assert dataset.steps_per_epoch(450) == 450
    literal = TrainConfig.from_dict({"epoch_steps": 100})
    assert literal.steps_per_epoch(450) == 100
    assert [dataset.previous_epoch(e) for e in (16, 24, 36, 20)] == [0, 16, 24, 16]
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"batch_size": 8}).steps_per_epoch(4)


def test_gpu_count_sets_the_global_batch_the_epoch_and_the_learning_rate() -> None:
    eight = TrainConfig.from_dict({"num_gpus": 8, "batch_size": 2})
    assert eight.global_batch_size == 16
    assert eight.steps_per_epoch(450) == 28  # one pass: 450 // 16, the last 2 clips wait for the next pass
    assert TrainConfig.from_dict({"num_gpus": 8, "epoch_steps": 100}).steps_per_epoch(450) == 100
    assert eight.effective_learning_rate == 1e-5  # lr_scaling: none
    assert TrainConfig.from_dict({"num_gpus": 8, "lr_scaling": "linear"}).effective_learning_rate == pytest.approx(8e-5)
    assert TrainConfig.from_dict({"num_gpus": 4, "lr_scaling": "sqrt"}).effective_learning_rate == pytest.approx(2e-5)
    assert TrainConfig.from_dict({"lr_scaling": "linear"}).effective_learning_rate == 1e-5  # one process: the paper's
    with pytest.raises(ConfigError, match="3 x 2 process"):
        TrainConfig.from_dict({"num_gpus": 2, "batch_size": 3}).steps_per_epoch(5)


def _schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, sub in schema["properties"].items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = _schema_defaults(sub)
        else:
            out[key] = sub["default"]
    return out


def _normalise(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _normalise(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_normalise(v) for v in d]
    return d


def test_schema_defaults_match_the_dataclasses() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    train, generate = schema["train"], schema["generate"]
    assert _normalise(_schema_defaults(train)) == _normalise(TrainConfig().to_dict())
    assert _normalise(_schema_defaults(generate)) == _normalise(asdict(GenerateConfig()))


SECTIONS = {
    TrainConfig: "train",
    DiffusersConfig: "train.diffusers",
    OpenSoraConfig: "train.opensora",
    GenerateConfig: "generate",
    DiffusersSampling: "generate.diffusers",
    OpenSoraSampling: "generate.opensora",
    BaselineModel: "generate.baselines.*",
}
"""Every dataclass of the train: and generate: sections, and its place in the schema."""


def _section(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


def _literal_choices(hint: Any) -> list[Any] | None:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return None


def test_every_settings_dataclass_is_checked_against_the_schema() -> None:
    """Each class of train/config.py that holds settings is one schema section (a new one must be
    added to SECTIONS); then key for key: the same keys, the schema's default as the field's
    default (a key with no default in the schema has none in the class either), and a Literal's
    choices as the schema's enum."""
    classes = {c for c in vars(train_config).values() if dataclasses.is_dataclass(c) and c.__module__ == train_config.__name__}
    assert classes == set(SECTIONS)
    schema = yaml.safe_load(SCHEMA.read_text())
    for cls, path in SECTIONS.items():
        section = _section(schema, path)
        props = section["properties"]
        names = [f.name for f in dataclasses.fields(cls) if not (cls is BaselineModel and f.name == "name")]
        assert sorted(names) == sorted(props), path
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in props:
                continue
            key, prop = f"{path}.{f.name}", props[f.name]
            if f.default is not dataclasses.MISSING:
                assert _normalise(f.default) == _normalise(prop["default"]), key
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
                want = _schema_defaults(prop) if "properties" in prop else prop["default"]
                got = asdict(value) if dataclasses.is_dataclass(value) else value
                if cls is TrainConfig and f.name == "opensora" or cls is GenerateConfig and f.name == "opensora":
                    got["extra_args"] = list(got["extra_args"])
                assert _normalise(got) == _normalise(want), key
            else:
                assert "default" not in prop, f"{key}: the schema has a default the class lacks"
            choices = _literal_choices(hints[f.name])
            if key == "train.backend":  # the registry's (test_the_backend_choices_are_the_registered_backends)
                continue
            if choices is not None or "enum" in prop:
                assert choices is not None and sorted(choices, key=repr) == sorted(prop["enum"], key=repr), key


def test_the_backend_choices_are_the_registered_backends() -> None:
    train = yaml.safe_load(SCHEMA.read_text())["properties"]["train"]["properties"]
    assert sorted(train["backend"]["enum"]) == backends.names()
    with pytest.raises(ConfigError, match="train.backend.*'nope'"):
        TrainConfig.from_dict({"backend": "nope"})


def test_config_block_validates_and_is_the_default() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load(SCHEMA.read_text())
    block = yaml.safe_load((ROOT / "config.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(block)
    assert _normalise(TrainConfig.from_dict(block["train"]).to_dict()) == _normalise(TrainConfig().to_dict())
    gen = asdict(GenerateConfig.from_dict(block["generate"]))
    assert set(gen.pop("baselines")) == {"cogvideox", "easyanimate"}  # Table 1's; no default: each model's own
    assert _normalise(gen) == _normalise({k: v for k, v in asdict(GenerateConfig()).items() if k != "baselines"})
    demo = yaml.safe_load((ROOT / "profiles" / "demo" / "overrides.yaml").read_text())
    demo_schema = dict(schema, additionalProperties=True)
    jsonschema.Draft202012Validator(demo_schema).validate(demo)
    assert TrainConfig.from_dict(demo["train"]).backend == "diffusers"
