"""Decisions taken against Open-Sora-Plan v1.3.1's own code (commit c41050ae), measured on an H200
in benchmarks/opensora_h200.md: where the sparse/interpolation settings live, the data order
across epochs, and ``drop_short_ratio`` values the plan cannot reproduce."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import test_opensora
from test_opensora import FAKE_TRAINER, _stub

from tav_pipeline.backends.opensora import annotation, checks
from tav_pipeline.backends.opensora import train as trainer
from tav_pipeline.errors import ConfigError
from tav_pipeline.train.config import TrainConfig

PAPER = {"sparse1d": True, "sparse_n": 4, "interpolation_scale_t": 1.0, "interpolation_scale_h": 1.0, "interpolation_scale_w": 1.0}

assets = test_opensora.assets  # the fixtures, shared with test_opensora.py
data_txt = test_opensora.data_txt


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.999])
def test_drop_short_ratio_between_0_and_1_is_refused(ratio: float) -> None:
    with pytest.raises(ConfigError, match="train.drop_short_ratio"):
        checks.check_settings(TrainConfig.from_dict({"drop_short_ratio": ratio}))


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_drop_short_ratio_0_and_1_are_planned(ratio: float) -> None:
    checks.check_settings(TrainConfig.from_dict({"drop_short_ratio": ratio}))


def _pretrained(tmp_path: Path, config: dict[str, Any]) -> TrainConfig:
    folder = tmp_path / "any93x640x640"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return TrainConfig.from_dict({"opensora": {"pretrained": str(folder)}})


def test_the_folders_config_with_the_papers_values_passes(tmp_path: Path) -> None:
    checks.check_pretrained_config(_pretrained(tmp_path, {"_class_name": "OpenSoraT2V_v1_3", **PAPER}))
    # interpolation scales left out: the class default 1.0 is the paper's value
    checks.check_pretrained_config(_pretrained(tmp_path, {"sparse1d": True, "sparse_n": 4}))


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "sparse1d"),  # no sparse1d: OpenSoraT2V_v1_3 trains dense attention
        ({"sparse1d": True}, "sparse_n"),  # class default sparse_n 2
        ({**PAPER, "sparse_n": 2}, "sparse_n"),
        ({**PAPER, "interpolation_scale_h": 0.5}, "interpolation_scale_h"),
        ({**PAPER, "_class_name": "OpenSoraT2V_v1_5"}, "pretrained"),
    ],
)
def test_a_folder_whose_config_differs_from_the_settings_is_refused(
    tmp_path: Path, config: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=f"train.opensora.{key}"):
        checks.check_pretrained_config(_pretrained(tmp_path, config))


def _plan(n: int) -> annotation.AnnotationPlan:
    return annotation.AnnotationPlan([{"path": f"/clips/{i}.mp4", "cap": str(i)} for i in range(n)])


def test_upstream_order_repeats_the_plan_every_launch() -> None:
    plan = _plan(6)
    assert annotation.annotation_items(plan, 2) == plan.items * 2


def test_per_epoch_order_shuffles_each_epoch_and_each_copy_differently() -> None:
    plan = _plan(8)
    one, two = (annotation.annotation_items(plan, 2, (1234, epoch)) for epoch in (1, 2))
    for items in (one, two):
        for copy in (items[:8], items[8:]):
            assert sorted(copy, key=lambda x: int(x["cap"])) == plan.items
    assert one != two and one[:8] != one[8:] and one[:8] != plan.items
    assert annotation.annotation_items(plan, 2, (1234, 1)) == one  # the same epoch gets the same order


@pytest.mark.parametrize("order", ["upstream", "per_epoch"])
def test_each_launch_writes_its_epochs_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_txt: Path, assets: dict[str, Any], order: str
) -> None:
    _stub(tmp_path / "bin", "accelerate", FAKE_TRAINER)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    written: list[list[str]] = []
    original = trainer.write_annotation

    def record(plan: annotation.AnnotationPlan, folder: Path, repeat: int = 1, order_seed: Any = None) -> Path:
        data = original(plan, folder, repeat, order_seed)
        annotation = data.read_text().split(",")[1].strip()
        written.append([item["path"] for item in json.loads(Path(annotation).read_text())])
        return data

    monkeypatch.setattr(trainer, "write_annotation", record)
    train = {**assets, "epochs": [3], "opensora": {**assets["opensora"], "data_order": order}}
    trainer.train_opensora_step(data_txt, None, tmp_path / "ck" / "epoch_3", tmp_path / "work", train, 3)
    assert len(written) == 3 and all(sorted(w) == sorted(written[0]) for w in written)
    if order == "upstream":
        assert written[0] == written[1] == written[2]
    else:
        assert written[0] != written[1] and written[1] != written[2]


def test_unknown_data_order_is_refused() -> None:
    with pytest.raises(ConfigError, match="train.opensora.data_order"):
        TrainConfig.from_dict({"opensora": {"data_order": "random"}})
