"""The HTML report: self-contained, agrees with the table files, shows settings and versions."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from test_tables import CONFIG, segments_table, vbench_json

from tav_pipeline import report, tables
from tav_pipeline.errors import ConfigError


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    segs, vb = [], []
    for checkpoint, counts in {"baseline": [1, 2], "epoch_16": [2, 2], "epoch_24": [2, 3]}.items():
        for group in "ABC":
            segs.append(segments_table("osp", checkpoint, group, counts, prompts=["a <b>bold</b> prompt", "two & more"]))
            vb.append(vbench_json("osp", checkpoint, group, weights="standin", scored=1, videos=2))
    segs.append(segments_table("cog", "baseline", "C", [1, 1]))
    segs.append(segments_table("mine", "baseline", "C", [2, 1]))
    return tables.summarise(segs, vb), pd.concat(segs, ignore_index=True)


def test_report_is_self_contained_and_matches_the_tables(inputs: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    summary, per_video = inputs
    figs = [("Average segments", _png(tmp_path / "chart.png")), ("Frames of prompt 3", _png(tmp_path / "strip.png"))]
    out = report.render_report(tmp_path / "report.html", summary, per_video, CONFIG, figs, settings={"evaluate": {"vbench": {"weights": "standin", "max_videos": 1}}}, versions={"torch": "9.9"})
    html = out.read_text()
    # images inline, nothing fetched from elsewhere
    assert html.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    # every Table 2 value in results/table2.csv appears in the report
    t2 = tables.table2(summary, CONFIG)
    for value in t2["average_segments"]:
        assert f'<span class="ours">{value:.3f}</span>' in html
    # the paper's values and the differences sit under ours
    assert "paper 2.900" in html and "paper 1.180" in html
    # stand-in and subset results are flagged at the top
    assert "Read with care" in html and "stand-in VBench weights: scores carry no information" in html and "VBench on 1 of 2 videos" in html
    # settings as YAML, versions, reading notes; prompts are escaped
    assert "weights: standin" in html and "max_videos: 1" in html
    assert "<th class=\"l\">torch</th><td class=\"l\">9.9</td>" in html
    assert "divided by 100" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; prompt" in html and "<b>bold</b>" not in html
    assert "Table 1" in html and "CogVideoX" in html and "1.480" in html


def test_a_dimension_not_run_shows_a_dash_not_a_difference(inputs: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    summary, per_video = inputs
    summary = summary.assign(overall_consistency=float("nan"), vbench_dimensions="aesthetic_quality;dynamic_degree;imaging_quality")
    html = report.render_report(tmp_path / "r.html", summary, per_video, CONFIG, [], versions={}).read_text()
    assert '<span class="ours">—</span><span class="paper">paper 0.045</span>' in html
    assert "VBench dimensions not run: overall_consistency" in html


def test_report_step_reads_the_rule_files(inputs: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    summary, per_video = inputs
    summary.to_csv(tmp_path / "summary.csv", index=False)
    per_video.to_csv(tmp_path / "per_video.csv", index=False)
    tables_cfg = {"table2": {"model": "osp"}, "table1": {"models": [{"name": "osp", "paper": "OpenSora"}, {"name": "cog", "label": "CogVideoX", "paper": "CogVideo"}]}}
    strips = {"group": "C", "indices": [4], "rows": [{"model": "osp", "checkpoint": "last_epoch"}]}
    out = report.render_report_step(
        tmp_path / "summary.csv", tmp_path / "per_video.csv", _png(tmp_path / "c.png"), [_png(tmp_path / "s.png")], tmp_path / "r.html",
        tables_cfg, [16, 24], {"title": "My run", "frame_strips": strips}, {"tables": tables_cfg},
    )
    html = out.read_text()
    assert "<title>My run</title>" in html and "group C prompt 4" in html
    assert html.count("<tr") > 9 + 2 + 2


def test_versions_and_config() -> None:
    versions = report.collect_versions(("numpy", "surely-not-a-package"))
    assert versions["numpy"] and versions["surely-not-a-package"] == "not installed" and versions["python"].count(".") == 2
    assert report.ReportConfig.from_dict({"settings": ["cuts"]}).settings == ("cuts",)
    with pytest.raises(ConfigError, match="unknown key"):
        report.ReportConfig.from_dict({"colour": "red"})
