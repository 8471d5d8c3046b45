"""Tables 1 and 2 in the paper's layout, and the paper's data shipped with the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _summaries import CONFIG, segments_table, vbench_json

from tav_pipeline import tables
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import read_segments

PAPER_HEADER = "model,group,epoch,average_segments,aesthetic_quality,overall_consistency,dynamic_degree,imaging_quality"


@pytest.fixture()
def summary() -> pd.DataFrame:
    segs, vb = [], []
    counts = {"baseline": [1, 1, 2, 1], "epoch_16": [2, 2, 1, 3], "epoch_24": [2, 2, 2, 2]}
    for checkpoint, c in counts.items():
        for group in "ABC":
            segs.append(segments_table("osp", checkpoint, group, c))
            vb.append(vbench_json("osp", checkpoint, group, scored=2 if checkpoint == "epoch_24" else 4, weights="standin" if group == "A" else "official", dims=tables.VBENCH_METRICS[:3] if group == "B" else tables.VBENCH_METRICS))
    segs.append(segments_table("cog", "baseline", "C", [1, 2, 2, 1], prompts=tables.paper_prompts("C")[:5], rejected=1))
    segs.append(segments_table("mine", "baseline", "C", [2, 2]))
    return tables.summarise(segs, vb)


def test_paper_data_ships_with_the_package() -> None:
    t2 = tables.paper_table2()
    assert ",".join(t2.columns) == PAPER_HEADER and len(t2) == 12
    assert t2.loc[(t2["model"] == "post-trained") & (t2["group"] == "C") & (t2["epoch"] == 24), "average_segments"].item() == pytest.approx(2.9)
    assert dict(zip(tables.paper_table1()["model"], tables.paper_table1()["average_segments"])) == {"OpenSora": 1.12, "CogVideo": 1.48, "EasyAnimate": 1.22}
    assert [len(tables.paper_prompts(g)) for g in "ABC"] == [42, 42, 42]
    assert tables.paper_prompts("C")[0].startswith("Previous scene: a man and a woman")
    assert len(tables.paper_prompt_pairs()) == 42
    # they are package data, not files of the shared folder
    assert "tav_pipeline/data/paper" in str(tables._paper_file("paper_table2.csv")).replace("\\", "/")


def test_table2_has_the_papers_layout_and_rows(summary: pd.DataFrame) -> None:
    t2 = tables.table2(summary, CONFIG)
    assert list(t2.columns[:8]) == PAPER_HEADER.split(",")
    assert list(t2.columns[8:]) == tables.TABLE2_EXTRA
    assert list(zip(t2["model"], t2["group"], t2["epoch"].astype("object").where(t2["epoch"].notna(), None))) == [
        ("baseline", "A", None), ("baseline", "B", None), ("baseline", "C", None),
        ("post-trained", "A", 16), ("post-trained", "B", 16), ("post-trained", "C", 16),
        ("post-trained", "A", 24), ("post-trained", "B", 24), ("post-trained", "C", 24),
    ]
    base_c = t2.iloc[2]
    assert base_c["average_segments"] == 1.25 and base_c["exact_count_accuracy"] == 0.25 and base_c["share_with_cut"] == 0.25
    e16_a = t2.iloc[3]
    assert e16_a["average_segments"] == 2.0 and e16_a["requested_scenes"] == 1 and e16_a["exact_count_accuracy"] == 0.25
    assert t2.iloc[0]["imaging_quality"] == 0.612  # VBench's overall (already / 100)


def test_table2_notes_mark_partial_and_standin_results(summary: pd.DataFrame) -> None:
    t2 = tables.table2(summary, CONFIG).set_index(["checkpoint", "group"])
    assert "stand-in VBench weights" in t2.loc[("baseline", "A"), "notes"]
    assert "VBench dimensions not run: imaging_quality" in t2.loc[("baseline", "B"), "notes"]
    assert np.isnan(t2.loc[("baseline", "B"), "imaging_quality"])
    assert "VBench on 2 of 4 videos" in t2.loc[("epoch_24", "C"), "notes"]
    assert t2.loc[("baseline", "C"), "notes"] == ""


def test_comparison_with_the_paper(summary: pd.DataFrame) -> None:
    t2 = tables.table2(summary, CONFIG)
    comp = tables.compare_table2(t2)
    assert list(comp.columns) == ["model", "group", "epoch", "metric", "ours", "paper", "difference"]
    assert len(comp) == 9 * 5
    row = comp[(comp["model"] == "post-trained") & (comp["group"] == "C") & (comp["epoch"] == 24) & (comp["metric"] == "average_segments")].iloc[0]
    assert (row["ours"], row["paper"], row["difference"]) == (2.0, 2.9, -0.9)
    base = comp[(comp["model"] == "baseline") & (comp["group"] == "A") & (comp["metric"] == "imaging_quality")].iloc[0]
    assert base["paper"] == 0.652 and base["difference"] == pytest.approx(0.612 - 0.652, abs=1e-9)


def test_an_epoch_the_paper_lacks_has_no_paper_value(summary: pd.DataFrame) -> None:
    s = summary.copy()
    s.loc[s["checkpoint"] == "epoch_24", "checkpoint"] = "epoch_5"
    config = tables.TablesConfig.from_dict({"table2": {"model": "osp", "epochs": [16, 5]}}, None)
    assert config.checkpoints == ("baseline", "epoch_5", "epoch_16")
    comp = tables.compare_table2(tables.table2(s, config))
    assert comp[comp["epoch"] == 5]["paper"].isna().all() and comp[comp["epoch"] == 16]["paper"].notna().all()


def test_table1_and_its_comparison(summary: pd.DataFrame) -> None:
    t1 = tables.table1(summary, CONFIG)
    assert list(t1["model"]) == ["Open-Sora-Plan", "CogVideoX", "Mine"]
    assert list(t1["average_segments"]) == [1.25, 1.5, 2.0]
    cog = t1.iloc[1]
    assert (cog["videos"], cog["unreadable"], cog["prompt_set"]) == (4, 1, "paper")
    assert "1 unreadable video(s) left out" in cog["notes"] and "VBench" not in cog["notes"]
    comp = tables.compare_table1(t1)
    assert list(comp["paper"].fillna(-1)) == [1.12, 1.48, -1]
    assert comp.iloc[1]["difference"] == pytest.approx(0.02)


def test_missing_evaluation_is_an_error(summary: pd.DataFrame) -> None:
    config = tables.TablesConfig.from_dict({"table2": {"model": "osp", "epochs": [36]}}, None)
    with pytest.raises(ConfigError, match="osp/epoch_36/A"):
        tables.table2(summary, config)


def test_config_epochs_fall_back_on_train_epochs() -> None:
    assert tables.TablesConfig.from_dict({}, [16, 24, 36]).checkpoints == ("baseline", "epoch_16", "epoch_24", "epoch_36")
    assert tables.TablesConfig.from_dict({"table2": {"epochs": [8]}}, [16]).epochs == (8,)
    with pytest.raises(ConfigError, match="train.epochs"):
        tables.TablesConfig.from_dict({}, None)
    with pytest.raises(ConfigError, match="unknown key"):
        tables.TablesConfig.from_dict({"table3": {}}, [1])
    with pytest.raises(ConfigError, match="unknown key"):
        tables.TablesConfig.from_dict({"table1": {"models": [{"name": "a", "hub": "x"}]}}, [1])
    assert tables.checkpoint_epoch("epoch_24") == 24 and tables.checkpoint_epoch("baseline") is None
    with pytest.raises(ConfigError):
        tables.checkpoint_epoch("step_100")


def test_prompt_set_recognises_the_papers_prompts() -> None:
    assert tables.prompt_set(tables.paper_prompts("B")[:5], "B") == "paper"
    assert tables.prompt_set([p.upper().rstrip(".") for p in tables.paper_prompts("A")[:3]], "A") == "paper"
    assert tables.prompt_set(["A cat on a mat."], "A") == "own"


def test_steps_write_summary_and_tables(tmp_path: Path) -> None:
    seg_paths, csvs, jsons = [], [], []
    for model, checkpoint, group in dict.fromkeys(CONFIG.table2_keys() + CONFIG.table1_keys()):
        folder = tmp_path / model / checkpoint / group
        folder.mkdir(parents=True, exist_ok=True)
        segments_table(model, checkpoint, group, [1, 2]).to_csv(folder / "segments.csv", index=False)
        seg_paths.append(folder / "segments.csv")
        if model == "osp":
            (folder / "vbench.json").write_text(json.dumps(vbench_json(model, checkpoint, group, scored=2, videos=2)))
            pd.DataFrame([{"model": model, "checkpoint": checkpoint, "group": group, "index": i, "path": f"{i}.mp4", "prompt": "p", "aesthetic_quality": 0.5, "overall_consistency": 0.05, "dynamic_degree": 1.0 - i, "imaging_quality": 61.2} for i in range(2)]).to_csv(folder / "vbench.csv", index=False)
            csvs.append(folder / "vbench.csv")
            jsons.append(folder / "vbench.json")
    tables.summarise_step(seg_paths, csvs, jsons, tmp_path / "summary.csv", tmp_path / "per_video.csv")
    per_video = read_segments(tmp_path / "per_video.csv")
    assert "imaging_quality_0_100" in per_video.columns and set(per_video.dropna(subset=["imaging_quality_0_100"])["imaging_quality_0_100"]) == {61.2}
    assert str(per_video.loc[per_video["segments"] == 2, "cut_frames"].iloc[0]) == "16"
    out = {name: tmp_path / f"{name}.csv" for name in ("table1", "table1_vs_paper", "table2", "table2_vs_paper")}
    tables.make_tables_step(tmp_path / "summary.csv", {"table1": {"models": [{"name": "osp", "paper": "OpenSora"}, {"name": "cog", "paper": "CogVideo"}, {"name": "mine"}]}}, [16, 24], "osp", out["table1"], out["table1_vs_paper"], out["table2"], out["table2_vs_paper"])
    header = out["table2"].read_text().splitlines()[0]
    assert header.startswith(PAPER_HEADER + ",checkpoint,")
    t2 = pd.read_csv(out["table2"])
    assert len(t2) == 9 and set(t2["average_segments"]) == {1.5} and t2["notes"].isna().all()
    assert pd.read_csv(out["table1_vs_paper"])["paper"].tolist()[:2] == [1.12, 1.48]
