"""The HTML report: self-contained, agrees with the table files, shows settings and versions."""

from __future__ import annotations

import base64
import platform
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from _summaries import CONFIG, segments_table, vbench_json

from tav_pipeline import report, tables
from tav_pipeline.errors import ConfigError


def _png(path: Path, colour: str = "white") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), facecolor=colour)
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


class _Page(HTMLParser):
    """The parts of the report a reader sees, per ``<h2 id=...>`` section: tables (rows of cell
    texts, header row included), images (alt, src), figure captions, preformatted text; and every
    element id and link."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.title = ""
        self.sections: dict[str, dict[str, list[Any]]] = {}
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._section = ""
        self._text: list[str] | None = None
        self._in: str = ""
        self.feed(html)

    def _part(self, kind: str) -> list[Any]:
        return self.sections.setdefault(self._section, {}).setdefault(kind, [])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "h2":
            self._section = str(a.get("id", ""))
        elif tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        elif tag == "table":
            self._part("tables").append([])
        elif tag == "tr":
            self._part("tables")[-1].append([])
        elif tag == "img":
            self._part("images").append((a.get("alt"), a.get("src")))
        elif tag in ("td", "th", "figcaption", "pre", "title"):
            self._in, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._in or self._text is None:
            return
        text = "".join(self._text).strip()
        if tag in ("td", "th"):
            self._part("tables")[-1][-1].append(text)
        elif tag == "title":
            self.title = text
        else:
            self._part(tag).append(text)
        self._in, self._text = "", None


def test_report_step_reads_the_rule_files(inputs: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    summary, per_video = inputs
    summary.to_csv(tmp_path / "summary.csv", index=False)
    per_video.to_csv(tmp_path / "per_video.csv", index=False)
    tables_cfg = {"table2": {"model": "osp"}, "table1": {"models": [{"name": "osp", "paper": "OpenSora"}, {"name": "cog", "label": "CogVideoX", "paper": "CogVideo"}]}}
    strips = {"group": "C", "indices": [4], "rows": [{"model": "osp", "checkpoint": "last_epoch"}]}
    chart, strip = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", colour="red")
    out = report.render_report_step(
        tmp_path / "summary.csv", tmp_path / "per_video.csv", chart, [strip], tmp_path / "r.html",
        tables_cfg, [16, 24], {"title": "My run", "frame_strips": strips}, {"tables": tables_cfg},
    )
    page = _Page(out.read_text())
    assert page.title == "My run"
    # every navigation link leads to a section of the page
    assert page.links and all(link.startswith("#") and link[1:] in page.ids for link in page.links)
    # the figures: the chart, then the strip, as the very PNG bytes of the rule's inputs
    figures = page.sections["figures"]
    assert [alt for alt, _ in figures["images"]] == ["c.png", "s.png"]
    assert [base64.b64decode(src.removeprefix("data:image/png;base64,")) for _, src in figures["images"]] == [chart.read_bytes(), strip.read_bytes()]
    assert figures["figcaption"][0].startswith("Average segments by prompt group")
    assert figures["figcaption"][1].startswith("Frames of group C prompt 4, one row per model")
    # Table 2: one row per (checkpoint, group) of the configured model and epochs, our value first
    config = tables.TablesConfig.from_dict(tables_cfg, [16, 24])
    t2 = tables.table2(summary, config)
    header, *rows = page.sections["table2"]["tables"][0]
    assert header[:4] == ["model", "group", "epoch", "average segments"]
    assert [r[:3] for r in rows] == [[m, g, "" if pd.isna(e) else str(e)] for m, g, e in zip(t2["model"], t2["group"], t2["epoch"])]
    assert [r[3].split("paper")[0] for r in rows] == [f"{v:.3f}" for v in t2["average_segments"]] == ["1.500"] * 3 + ["2.000"] * 3 + ["2.500"] * 3
    # ... with the paper's value and our difference under it (baseline A: paper 1.180)
    assert rows[0][3] == "1.500paper 1.180 · 0.320"
    # Table 1: the configured baselines with their labels, as results/table1.csv has them
    t1 = tables.table1(summary, config)
    header, *rows = page.sections["table1"]["tables"][0]
    assert header == [c for c in t1.columns if c != "notes"]
    assert [(r[header.index("model")], r[header.index("average_segments")]) for r in rows] == [("osp", "1.500"), ("CogVideoX", "1.000")]
    vs_paper = page.sections["table1"]["tables"][1]
    assert vs_paper[1:] == [["osp", "OpenSora", "1.500", "1.120", "0.380"], ["CogVideoX", "CogVideo", "1.000", "1.480", "-0.480"]]
    # per video: every video of the CSV, with its scene count and (escaped) prompt
    header, *rows = page.sections["videos"]["tables"][0]
    assert len(rows) == len(per_video)
    got = [(r[header.index("model")], r[header.index("checkpoint")], r[header.index("group")], r[header.index("index")], r[header.index("segments")], r[header.index("prompt")]) for r in rows]
    assert got == [(m, c, g, str(i), str(n), p) for m, c, g, i, n, p in per_video[["model", "checkpoint", "group", "index", "segments", "prompt"]].itertuples(index=False)]
    # the settings passed to the rule, as YAML that reads back to them
    assert yaml.safe_load(page.sections["settings"]["pre"][0]) == {"tables": tables_cfg}
    versions = dict(page.sections["versions"]["tables"][0])
    assert versions["python"] == platform.python_version() and versions["numpy"] == np.__version__


def test_versions_and_config() -> None:
    versions = report.collect_versions(("numpy", "surely-not-a-package"))
    assert versions["numpy"] and versions["surely-not-a-package"] == "not installed" and versions["python"].count(".") == 2
    assert report.ReportConfig.from_dict({"settings": ["cuts"]}).settings == ("cuts",)
    with pytest.raises(ConfigError, match="unknown key"):
        report.ReportConfig.from_dict({"colour": "red"})
