"""The external assets a configured run reads: what each is, where the run reads it, which rule
fetches it and from where.

A user may place any of them by hand (offline machines, shared model folders, a copy made with
``cp -p``). The workflow therefore never owns a path that exists: a fetch rule is defined only for
assets missing when the workflow is parsed, its outputs are only the missing paths, and the rules
that read an asset take it as ``ancient()``, so neither its age nor a change of the fetch rule's
code can make Snakemake rerun the fetch (and delete the asset first). What the workflow builds
itself (the demo's tiny models under ``results/``) is not an external asset.

:func:`missing_report` is what a run that could not fetch an asset prints at its end: every asset
still missing, with its path, the rule and where that rule downloads from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tav_pipeline.backends import backend
from tav_pipeline.locations import Asset, is_local_folder, under

__all__ = ["Asset", "external_assets", "missing_report"]


def external_assets(
    config: dict[str, Any],
    *,
    baselines: Iterable[str] = (),
    vbench_files: Mapping[str, str] | None = None,
) -> list[Asset]:
    """The external assets of the configured run, in the order a run needs them.

    Arguments:
        config: the validated config (defaults filled).
        baselines: names in ``generate.baselines`` the tables or figures use.
        vbench_files: VBench's weight files the configured dimensions read (with official
            weights), each with the URL it is published at.
    """
    results = str(config["results"])
    out: list[Asset] = []
    source = config["source"]
    if not under(source["metadata_csv"], results):
        url = source["metadata_url"]
        out.append(
            Asset(
                "source.metadata_csv",
                source["metadata_csv"],
                "fetch_metadata",
                "Panda-70M's validation metadata CSV",
                url,
                "download panda70m_validation.csv (linked from Panda-70M's README) and place it there, "
                "or set source.metadata_url",
            )
        )
    captions = config["captions"]
    if not under(captions["model"], results):
        out.append(
            Asset(
                "captions.model",
                captions["model"],
                "fetch_blip",
                "the BLIP captioning model",
                f"hub {captions['hub_id']}@{captions['revision']}" if captions["hub_id"] else "",
                f"save_pretrained() of {captions['hub_id'] or 'a BLIP captioning model'} there",
            )
        )
    out += backend(config["train"]["backend"]).assets(config["train"], results)
    for name in baselines:
        spec = config["generate"]["baselines"][name]
        if is_local_folder(spec["pretrained"]) and not under(spec["pretrained"], results):
            out.append(
                Asset(
                    f"generate.baselines.{name}.pretrained",
                    spec["pretrained"],
                    "fetch_baseline_model",
                    f"the {name} pipeline (baseline)",
                    f"hub {spec['hub_id']}@{spec['revision']}" if spec["hub_id"] else "",
                    "save_pretrained() of the pipeline there",
                )
            )
    for path, url in (vbench_files or {}).items():
        out.append(
            Asset(
                "evaluate.vbench.cache_dir",
                str(path),
                "fetch_vbench_weights",
                f"VBench weight {Path(path).name}",
                url,
                "download the file from that URL to that path",
            )
        )
    return out


def missing(assets: Iterable[Asset]) -> list[Asset]:
    return [a for a in assets if not a.present]


def missing_report(assets: Iterable[Asset]) -> str:
    """A plain-text list of the assets still missing (empty when none is)."""
    gone = missing(assets)
    if not gone:
        return ""
    lines = [f"{len(gone)} asset(s) this run needs are missing and could not be fetched:"]
    for a in gone:
        lines.append(f"  - {a.what}: {a.path}  ({a.key})")
        lines.append(f"      rule {a.rule} downloads it from {a.source}" if a.source else f"      rule {a.rule}: no source configured")
        lines.append(f"      by hand: {a.by_hand}")
    lines.append("Files already in place are never moved, overwritten or deleted by the workflow.")
    return "\n".join(lines)
