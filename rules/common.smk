# Config validation, the external assets, and the input functions that read checkpoints.
import csv
import re
from pathlib import Path

from snakemake.utils import validate

from tav_pipeline import assets as A
from tav_pipeline.clips import ClipConfig, rejection
from tav_pipeline.cuts import CutResult
from tav_pipeline.figures import FrameStripConfig
from tav_pipeline.metrics.vbench import VBenchConfig
from tav_pipeline.metrics.vbench_weights import weight_paths, weight_sources
from tav_pipeline.source import KEY_PATTERN
from tav_pipeline.video_fetch import video_settings
from tav_pipeline.tables import TablesConfig
from tav_pipeline.train import targets as TT


validate(config, schema="schemas/config.schema.yaml")

RESULTS = config["results"]
ENVS = "../envs"

# What the tables and figures show: (model, checkpoint, group) keys, and what generates each model;
# a model nothing generates is a config error here, before any job starts.
EVAL_VBENCH = VBenchConfig.from_dict(config["evaluate"]["vbench"])
EVAL_TABLES = TablesConfig.from_dict(config["tables"], config["train"]["epochs"], config["train"]["model"])
EVAL_STRIPS = FrameStripConfig.from_dict(config["report"]["frame_strips"], EVAL_TABLES.epochs)
# Scenes are counted for Table 2, Table 1 and the frame strips; VBench scores Table 2's rows.
EVAL_SEGMENT_KEYS = list(dict.fromkeys(EVAL_TABLES.table2_keys() + EVAL_TABLES.table1_keys() + EVAL_STRIPS.keys()))
EVAL_VBENCH_KEYS = EVAL_TABLES.table2_keys()
GENERATED_BY = TT.generated_models(config["train"], config["generate"], EVAL_SEGMENT_KEYS)

# External assets (models, weights, metadata): fetching is planned only for those missing now, and
# owns only the missing paths; readers take them as ancient(). A user's files are never touched.
ASSETS = A.external_assets(
    config,
    baselines=[m for m, rule in GENERATED_BY.items() if rule == "generate_baseline_videos"],
    vbench_files=(
        weight_sources(EVAL_VBENCH.cache_dir, EVAL_VBENCH.dimensions) if EVAL_VBENCH.weights == "official" else {}
    ),
)
ASSET_PATHS = {a.path for a in ASSETS}


def asset(path):
    """The input on a model or data path: ancient() when it is an external asset (neither its age
    nor a change to the code that would fetch it is a reason to rerun), nothing for a hub id."""
    path = str(path)
    if path in ASSET_PATHS:
        return [ancient(path)]
    return [path] if A.is_local_folder(path) else []


def to_fetch(rule):
    """The paths the named fetch step provides, i.e. its assets missing now (none: it is not defined)."""
    return [a.path for a in ASSETS if a.rule == rule and not a.present]


# Every wildcard of every rule, once. Video keys (tav_pipeline.source.video_key) are
# [A-Za-z0-9_-]+ and never periodic, so every Panda-70M ID is a valid wildcard value, and {video}
# never spans a folder or an extension; a model or group name is one folder of
# results/generated/{model}/{checkpoint}/{group}; a checkpoint is the baseline or an epoch; a
# baseline folder is one that fetch_baseline_model provides (none: nothing matches).
wildcard_constraints:
    video=KEY_PATTERN,
    model=r"[^/]+",
    checkpoint=r"baseline|epoch_\d+",
    group=r"[^/]+",
    epoch=r"\d+",
    index=r"\d+",
    baseline_folder="|".join(re.escape(p) for p in to_fetch("fetch_baseline_model")) or "(?!)",


def R(path):
    """A path under the results folder."""
    return f"{RESULTS}/{path}"


def log_path(rule, name="log"):
    return f"{RESULTS}/logs/{rule}/{name}.log"


def sampled_videos(wildcards=None):
    """Video keys of the sample (after the sample_videos checkpoint has run)."""
    with checkpoints.sample_videos.get().output.sample.open() as handle:
        return [row["video"] for row in csv.DictReader(handle)]


def clip_videos(wildcards=None):
    """Sampled videos whose cut record allows a clip (reads every detect_cuts checkpoint)."""
    clip_config = ClipConfig.from_dict(config["clips"])
    keep = []
    for video in sampled_videos():
        result = CutResult.read(checkpoints.detect_cuts.get(video=video).output[0])
        if rejection(result, clip_config) is None:
            keep.append(video)
    return keep


def per_video(pattern, videos):
    return [pattern.format(video=v) for v in videos]


def caption_model():
    return asset(config["captions"]["model"])
