# Config validation and the input functions that read checkpoints.
import csv
from pathlib import Path

from snakemake.utils import validate

from tav_pipeline.clips import ClipConfig, rejection
from tav_pipeline.cuts import CutResult
from tav_pipeline.source import KEY_PATTERN
from tav_pipeline.validation import ValidationRecord


validate(config, schema="schemas/config.schema.yaml")

RESULTS = config["results"]
ENVS = "../envs"


# Video keys (tav_pipeline.source.video_key) are [A-Za-z0-9_-]+ and never periodic, so every
# Panda-70M ID is a valid wildcard value, and {video} never spans a folder or an extension.
wildcard_constraints:
    video=KEY_PATTERN,


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


def validated_videos(wildcards=None):
    """Videos whose clip passed validation (reads every validate_clip checkpoint): only these get
    keyframes and captions."""
    return [
        video
        for video in clip_videos()
        if ValidationRecord.read(checkpoints.validate_clip.get(video=video).output[0]).passed
    ]


def per_video(pattern, videos):
    return [pattern.format(video=v) for v in videos]


def caption_model():
    return config["captions"]["model"]
