"""The paper's Tables 1 and 2 from a run's metrics, next to the paper's own numbers.

- :func:`summarise`: one row per evaluated (model, checkpoint, group) with every metric
  (``results/eval/summary.csv``), from the per-group ``segments.csv`` and ``vbench.json`` files.
- :func:`table2`: the paper's Table 2 layout (model, group, epoch, average segments, aesthetic
  quality, overall consistency, dynamic degree, imaging quality) for the baseline and each
  configured epoch, then our extra columns; :func:`compare_table2` puts the paper's values and the
  differences beside ours.
- :func:`table1`: average segments of baseline models on two-scene prompts (the paper's Table 1);
  :func:`compare_table1`.

The paper's numbers ship with the package (``tav_pipeline/data/paper/``); read them with
:func:`paper_table1`, :func:`paper_table2`, :func:`paper_prompts` and :func:`paper_prompt_pairs`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError
from tav_pipeline.metrics.segments import KEYS, check_section, read_segments, summarise_segments

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("average_segments", "aesthetic_quality", "overall_consistency", "dynamic_degree", "imaging_quality")
"""Table 2's metric columns, in its order."""
VBENCH_METRICS: tuple[str, ...] = METRICS[1:]

TABLE2_COLUMNS = ["model", "group", "epoch", *METRICS]
"""The paper's layout (``paper_table2.csv``): model is ``baseline`` or ``post-trained``; epoch is
empty for the baseline."""
TABLE2_EXTRA = [
    "checkpoint", "average_segments_se", "videos", "unreadable", "requested_scenes", "exact_count_accuracy", "share_with_cut",
    "first_cut_position", "vbench_videos", "vbench_weights", "prompt_set", "notes",
]
"""Our columns after the paper's: the checkpoint, the standard error of average segments, videos counted, unreadable videos, scenes requested by the
group, share of videos with exactly that many scenes, share with at least one cut, mean position of
the first cut (fraction of the video), videos VBench scored, ``official``/``standin`` weights,
whether the prompts are the paper's printed ones, and notes on anything partial."""

TABLE1_COLUMNS = ["model", "average_segments", "name", "paper_model", "group", "checkpoint", "videos", "unreadable", "exact_count_accuracy", "share_with_cut", "prompt_set", "notes"]

SUMMARY_COLUMNS = [
    *KEYS, "videos", "unreadable", "average_segments", "segments_std", "requested_scenes", "exact_count_accuracy",
    "share_with_cut", "first_cut_position", *VBENCH_METRICS, "vbench_videos", "vbench_dimensions", "vbench_weights",
    "dynamic_degree_undefined", "prompt_set",
]


# ------------------------------------------------------------------------------ paper data


def _paper_file(name: str) -> Any:
    return resources.files("tav_pipeline").joinpath("data", "paper", name)


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 (model, average_segments)."""
    import pandas as pd

    with _paper_file("paper_table1.csv").open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 (:data:`TABLE2_COLUMNS`; epoch is a nullable integer)."""
    import pandas as pd

    with _paper_file("paper_table2.csv").open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle)
    table["epoch"] = table["epoch"].astype("Int64")
    return table


def paper_prompts(group: str) -> list[str]:
    """The paper's printed test prompts of group ``A``, ``B`` or ``C`` (42 of 50, appendix B)."""
    if group not in ("A", "B", "C"):
        raise ConfigError("group", f"the paper prints groups A, B and C, not {group!r}")
    text = _paper_file(f"paper_prompts_{group}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_paper_prompts(group: str, out_txt: str | Path) -> Path:
    """Rule ``write_paper_prompts``: :func:`paper_prompts` of ``group``, one per line, as the
    generation rules read prompt files (``generate.prompt_set: paper``)."""
    prompts = paper_prompts(group)
    path = Path(out_txt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    log.info("%d printed prompts of group %s -> %s", len(prompts), group, path)
    return path


def paper_prompt_pairs() -> pd.DataFrame:
    """The paper's printed prompts as (index, scene1, scene2)."""
    import pandas as pd

    with _paper_file("paper_prompt_pairs.csv").open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def _norm(text: str) -> str:
    return re.sub(r"[\s.;,]+", " ", text).strip().lower()


def prompt_set(prompts: Sequence[str], group: str) -> str:
    """``paper`` when every prompt is one of the paper's printed prompts of ``group`` (ignoring
    case and punctuation), else ``own``."""
    if group not in ("A", "B", "C") or not prompts:
        return "own"
    printed = {_norm(p) for p in paper_prompts(group)}
    return "paper" if all(_norm(p) in printed for p in prompts) else "own"


# ------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class Table1Model:
    """One Table 1 entry: ``name`` is the ``{model}`` of ``results/generated/{model}/...``."""

    name: str
    label: str = ""
    paper: str = ""
    """The paper's name for it in Table 1 (``OpenSora``, ``CogVideo``, ``EasyAnimate``); empty if
    the paper has no number for it."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Table1Model:
        check_keys("tables.table1.models", d, cls)
        if not d.get("name"):
            raise ConfigError("tables.table1.models", "every entry needs a name")
        return cls(name=str(d["name"]), label=str(d.get("label") or d["name"]), paper=str(d.get("paper") or ""))


DEFAULT_TABLE1_MODELS = (
    Table1Model("opensora_plan", "Open-Sora-Plan v1.3.1", "OpenSora"),
    Table1Model("cogvideox", "CogVideoX", "CogVideo"),
    Table1Model("easyanimate", "EasyAnimate", "EasyAnimate"),
)


@dataclass(frozen=True)
class TablesConfig:
    """``tables:`` in config.yaml, with the epochs resolved (``tables.table2.epochs`` or, when
    empty, ``train.epochs``)."""

    model: str = "opensora_plan"
    """Table 2's post-trained model: the ``{model}`` of its generated videos (``train.model``)."""
    epochs: tuple[int, ...] = (16, 24, 36)
    groups: tuple[str, ...] = ("A", "B", "C")
    table1_models: tuple[Table1Model, ...] = DEFAULT_TABLE1_MODELS
    table1_group: str = "C"
    table1_checkpoint: str = "baseline"
    decimals: int = 3

    def __post_init__(self) -> None:
        if len(set(self.epochs)) != len(self.epochs) or any(int(e) < 0 for e in self.epochs):
            raise ConfigError("tables.table2.epochs", f"need distinct epochs >= 0, got {list(self.epochs)}")
        if not self.groups:
            raise ConfigError("tables.table2.groups", "name at least one group")
        names = [m.name for m in self.table1_models]
        if len(set(names)) != len(names):
            raise ConfigError("tables.table1.models", f"duplicate names in {names}")
        if self.decimals < 0:
            raise ConfigError("tables.decimals", "must be >= 0")

    @classmethod
    def from_dict(cls, tables: Mapping[str, Any], train_epochs: Sequence[int] | None = None, train_model: str | None = None) -> TablesConfig:
        """``tables.table2.epochs`` and ``tables.table2.model`` left empty take ``train_epochs``
        and ``train_model`` (``train.epochs`` and ``train.model``)."""
        check_section("tables", tables, {"table1", "table2", "decimals"})
        t2 = dict(tables.get("table2") or {})
        check_section("tables.table2", t2, {"model", "epochs", "groups"})
        t1 = dict(tables.get("table1") or {})
        check_section("tables.table1", t1, {"models", "group", "checkpoint"})
        epochs = t2.get("epochs") or list(train_epochs or [])
        if not epochs:
            raise ConfigError("tables.table2.epochs", "empty, and no train.epochs to fall back on")
        kwargs: dict[str, Any] = {"epochs": tuple(int(e) for e in epochs)}
        if t2.get("model") or train_model:
            kwargs["model"] = str(t2.get("model") or train_model)
        if "groups" in t2:
            kwargs["groups"] = tuple(str(g) for g in t2["groups"])
        if "models" in t1:
            kwargs["table1_models"] = tuple(Table1Model.from_dict(m) for m in t1["models"])
        if "group" in t1:
            kwargs["table1_group"] = str(t1["group"])
        if "checkpoint" in t1:
            kwargs["table1_checkpoint"] = str(t1["checkpoint"])
        if "decimals" in tables:
            kwargs["decimals"] = int(tables["decimals"])
        return cls(**kwargs)

    @property
    def checkpoints(self) -> tuple[str, ...]:
        """Table 2's checkpoints: ``baseline`` then ``epoch_{N}`` in epoch order."""
        return ("baseline", *(checkpoint_name(e) for e in sorted(self.epochs)))

    def table2_keys(self) -> list[tuple[str, str, str]]:
        """(model, checkpoint, group) of every Table 2 row, in the table's order."""
        return [(self.model, c, g) for c in self.checkpoints for g in self.groups]

    def table1_keys(self) -> list[tuple[str, str, str]]:
        return [(m.name, self.table1_checkpoint, self.table1_group) for m in self.table1_models]


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{int(epoch)}"


def checkpoint_epoch(checkpoint: str) -> int | None:
    """``epoch_16`` -> 16; ``baseline`` -> None."""
    if checkpoint == "baseline":
        return None
    m = re.fullmatch(r"epoch_(\d+)", checkpoint)
    if not m:
        raise ConfigError("checkpoint", f"expected 'baseline' or 'epoch_N', got {checkpoint!r}")
    return int(m.group(1))


# ------------------------------------------------------------------------------ summary


def read_summary(path: str | Path) -> pd.DataFrame:
    """``summary.csv`` as :func:`summarise` wrote it (empty text cells stay empty strings)."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"model": str, "checkpoint": str, "group": str, "vbench_dimensions": str, "vbench_weights": str, "prompt_set": str})
    return table.fillna({"vbench_dimensions": "", "vbench_weights": "", "prompt_set": ""})


def read_vbench_json(path: str | Path) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(Path(path).read_text())
    return d


def summarise(segment_tables: Sequence[pd.DataFrame], vbench: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """One row per (model, checkpoint, group): segment metrics (all groups with segment tables)
    and VBench's overall scores and what was scored (groups with a ``vbench.json``).

    Arguments:
        segment_tables: per-video ``segments.csv`` tables.
        vbench: the ``vbench.json`` contents (``overall`` plus the meta of
            :class:`~tav_pipeline.metrics.vbench.VBenchResult`).
    """
    import pandas as pd

    if not segment_tables:
        raise ConfigError("evaluate", "no segment tables to summarise")
    per_video = pd.concat(list(segment_tables), ignore_index=True)
    summary = summarise_segments(per_video)
    prompts = {k: list(part["prompt"].astype(str)) for k, part in per_video.groupby(KEYS, sort=False)}
    summary["prompt_set"] = [prompt_set(prompts[(r.model, r.checkpoint, r.group)], str(r.group)) for r in summary.itertuples()]
    vb_rows = []
    for item in vbench:
        row: dict[str, Any] = {k: item[k] for k in KEYS}
        for dim in VBENCH_METRICS:
            value = item.get("overall", {}).get(dim)
            row[dim] = np.nan if value is None else float(value)
        row["vbench_videos"] = item.get("scored_videos", 0)
        row["vbench_dimensions"] = ";".join(item.get("dimensions", []))
        row["vbench_weights"] = item.get("weights", "")
        row["dynamic_degree_undefined"] = len(item.get("dynamic_degree_undefined", []))
        vb_rows.append(row)
    vb = pd.DataFrame(vb_rows, columns=[*KEYS, *VBENCH_METRICS, "vbench_videos", "vbench_dimensions", "vbench_weights", "dynamic_degree_undefined"])
    out = summary.merge(vb, on=KEYS, how="left")
    out["vbench_videos"] = out["vbench_videos"].fillna(0).astype(int)
    out["dynamic_degree_undefined"] = out["dynamic_degree_undefined"].fillna(0).astype(int)
    out["vbench_dimensions"] = out["vbench_dimensions"].fillna("")
    out["vbench_weights"] = out["vbench_weights"].fillna("")
    return out[SUMMARY_COLUMNS]


def notes(row: Mapping[str, Any], vbench_expected: bool = True) -> str:
    """Plain-language notes on a summary row: anything partial, stand-in or unreadable."""
    out = []
    unreadable = int(row.get("unreadable") or 0)
    if unreadable:
        out.append(f"{unreadable} unreadable video(s) left out")
    if vbench_expected:
        scored = int(row.get("vbench_videos") or 0)
        total = int(row.get("videos") or 0) + unreadable
        if scored == 0:
            out.append("VBench not run")
        else:
            if scored < total:
                out.append(f"VBench on {scored} of {total} videos")
            dims = [d for d in str(row.get("vbench_dimensions") or "").split(";") if d]
            missing = [d for d in VBENCH_METRICS if d not in dims]
            if missing:
                out.append("VBench dimensions not run: " + ", ".join(missing))
            if row.get("vbench_weights") == "standin":
                out.append("stand-in VBench weights: scores carry no information")
            undefined = int(row.get("dynamic_degree_undefined") or 0)
            if undefined:
                out.append(f"dynamic degree undefined for {undefined} video(s) under 128 px (left out)")
    return "; ".join(out)


def _lookup(summary: pd.DataFrame, key: tuple[str, str, str]) -> pd.Series:
    model, checkpoint, group = key
    hit = summary[(summary["model"] == model) & (summary["checkpoint"] == checkpoint) & (summary["group"] == group)]
    if hit.empty:
        raise ConfigError("tables", f"no evaluation of {model}/{checkpoint}/{group} in the summary")
    return hit.iloc[0]


# ------------------------------------------------------------------------------ tables


def table2(summary: pd.DataFrame, config: TablesConfig) -> pd.DataFrame:
    """Table 2 in the paper's layout plus :data:`TABLE2_EXTRA`, rounded to ``config.decimals``."""
    import pandas as pd

    rows = []
    for key in config.table2_keys():
        s = _lookup(summary, key)
        epoch = checkpoint_epoch(key[1])
        row: dict[str, Any] = {
            "model": "baseline" if epoch is None else "post-trained",
            "group": key[2],
            "epoch": epoch,
        }
        for m in METRICS:
            row[m] = s.get(m, np.nan)
        n = int(s["videos"])
        row.update(
            # standard error of the mean segments: sample std (ddof 1) / sqrt(n)
            average_segments_se=float(s["segments_std"]) / np.sqrt(n - 1) if n > 1 else np.nan,
            checkpoint=key[1],
            videos=n,
            unreadable=int(s["unreadable"]),
            requested_scenes=int(s["requested_scenes"]),
            exact_count_accuracy=s["exact_count_accuracy"],
            share_with_cut=s["share_with_cut"],
            first_cut_position=s["first_cut_position"],
            vbench_videos=int(s["vbench_videos"]),
            vbench_weights=s["vbench_weights"],
            prompt_set=s["prompt_set"],
            notes=notes(s.to_dict()),
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*TABLE2_COLUMNS, *TABLE2_EXTRA])
    table["epoch"] = table["epoch"].astype("Int64")
    return _round(table, config.decimals)


def _round(table: pd.DataFrame, decimals: int) -> pd.DataFrame:
    import pandas as pd

    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(decimals)
    return out


def compare_table2(ours: pd.DataFrame, paper: pd.DataFrame | None = None, decimals: int = 3) -> pd.DataFrame:
    """Long table: model, group, epoch, metric, ours, paper, difference (ours - paper). Rows of
    ours that the paper lacks (another epoch) have an empty paper value."""
    import pandas as pd

    paper = paper_table2() if paper is None else paper
    rows = []
    for r in ours.itertuples(index=False):
        epoch = r.epoch if not pd.isna(r.epoch) else None
        hit = paper[(paper["model"] == r.model) & (paper["group"] == r.group) & ((paper["epoch"].isna()) if epoch is None else (paper["epoch"] == epoch))]
        for m in METRICS:
            mine = getattr(r, m)
            theirs = float(hit.iloc[0][m]) if not hit.empty else np.nan
            rows.append({"model": r.model, "group": r.group, "epoch": epoch, "metric": m, "ours": mine, "paper": theirs, "difference": mine - theirs})
    table = pd.DataFrame(rows, columns=["model", "group", "epoch", "metric", "ours", "paper", "difference"])
    table["epoch"] = table["epoch"].astype("Int64")
    return _round(table, decimals)


def table1(summary: pd.DataFrame, config: TablesConfig) -> pd.DataFrame:
    """Table 1: average segments of each configured model's baseline on the two-scene group."""
    import pandas as pd

    rows = []
    for model, key in zip(config.table1_models, config.table1_keys()):
        s = _lookup(summary, key)
        rows.append({
            "model": model.label,
            "average_segments": s["average_segments"],
            "name": model.name,
            "paper_model": model.paper,
            "group": key[2],
            "checkpoint": key[1],
            "videos": int(s["videos"]),
            "unreadable": int(s["unreadable"]),
            "exact_count_accuracy": s["exact_count_accuracy"],
            "share_with_cut": s["share_with_cut"],
            "prompt_set": s["prompt_set"],
            "notes": notes(s.to_dict(), vbench_expected=False),
        })
    return _round(pd.DataFrame(rows, columns=TABLE1_COLUMNS), config.decimals)


def compare_table1(ours: pd.DataFrame, paper: pd.DataFrame | None = None, decimals: int = 3) -> pd.DataFrame:
    """model, paper_model, ours, paper, difference for Table 1."""
    import pandas as pd

    paper = paper_table1() if paper is None else paper
    values = dict(zip(paper["model"], paper["average_segments"]))
    rows = []
    for r in ours.itertuples(index=False):
        theirs = float(values[r.paper_model]) if r.paper_model in values else np.nan
        rows.append({"model": r.model, "paper_model": r.paper_model, "ours": r.average_segments, "paper": theirs, "difference": r.average_segments - theirs})
    return _round(pd.DataFrame(rows, columns=["model", "paper_model", "ours", "paper", "difference"]), decimals)


@dataclass
class Tables:
    """Both tables and their comparisons with the paper."""

    table1: pd.DataFrame
    table1_vs_paper: pd.DataFrame
    table2: pd.DataFrame
    table2_vs_paper: pd.DataFrame
    config: TablesConfig = field(default_factory=TablesConfig)


def build_tables(summary: pd.DataFrame, config: TablesConfig) -> Tables:
    t1 = table1(summary, config)
    t2 = table2(summary, config)
    return Tables(
        table1=t1,
        table1_vs_paper=compare_table1(t1, decimals=config.decimals),
        table2=t2,
        table2_vs_paper=compare_table2(t2, decimals=config.decimals),
        config=config,
    )


# ------------------------------------------------------------------------------ workflow steps


def summarise_step(
    segments_csvs: Sequence[str | Path],
    vbench_csvs: Sequence[str | Path],
    vbench_jsons: Sequence[str | Path],
    summary_csv: str | Path,
    per_video_csv: str | Path,
) -> pd.DataFrame:
    """Rule ``summarise_evaluation``: ``summary.csv`` (one row per model/checkpoint/group) and
    ``per_video.csv`` (segment columns, then VBench's per-video scores where scored)."""
    import pandas as pd

    segs = [read_segments(p) for p in segments_csvs]
    summary = summarise(segs, [read_vbench_json(p) for p in vbench_jsons])
    per_video = pd.concat(segs, ignore_index=True)
    if vbench_csvs:
        scores = pd.concat([pd.read_csv(p, dtype={"model": str, "checkpoint": str, "group": str}) for p in vbench_csvs], ignore_index=True)
        scores = scores.drop(columns=[c for c in ("path", "prompt") if c in scores.columns])
        scores = scores.rename(columns={"imaging_quality": "imaging_quality_0_100"})
        per_video = per_video.merge(scores, on=[*KEYS, "index"], how="left")
    Path(summary_csv).parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(summary_csv, index=False)
    per_video.to_csv(per_video_csv, index=False)
    log.info("summary of %d (model, checkpoint, group) and %d video(s)", len(summary), len(per_video))
    return summary


def make_tables_step(
    summary_csv: str | Path,
    tables: dict[str, Any],
    train_epochs: Sequence[int] | None,
    train_model: str | None,
    table1_csv: str | Path,
    table1_vs_paper_csv: str | Path,
    table2_csv: str | Path,
    table2_vs_paper_csv: str | Path,
) -> Tables:
    """Rule ``make_tables``: Tables 1 and 2 and their comparisons with the paper."""
    config = TablesConfig.from_dict(tables, train_epochs, train_model)
    built = build_tables(read_summary(summary_csv), config)
    for frame, path in ((built.table1, table1_csv), (built.table1_vs_paper, table1_vs_paper_csv), (built.table2, table2_csv), (built.table2_vs_paper, table2_vs_paper_csv)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    log.info("Table 2:\n%s", built.table2[TABLE2_COLUMNS].to_string(index=False))
    log.info("Table 1:\n%s", built.table1[["model", "average_segments"]].to_string(index=False))
    return built
