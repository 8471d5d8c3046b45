# tav-pipeline: build the TAV dataset (Panda-70M -> two-scene clips -> per-scene captions ->
# merged prompts) and reproduce the paper's post-training study. Rules in DAG order:
import sys

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/source.smk"
include: "rules/sample.smk"
include: "rules/cuts.smk"
include: "rules/clips.smk"
include: "rules/captions.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        R("tav.json"),
        R("rejects.csv"),
        R("sample_categories.csv"),
        TT.checkpoint_targets(RESULTS, TRAIN),
        TT.generated_targets(RESULTS, TRAIN, GEN),
        rules.tables_and_report.input,
    default_target: True


onerror:
    # offline or with a wrong path: one list of every asset still missing, and how to get it
    if A.missing(ASSETS):
        print(f"\n{A.missing_report(ASSETS)}\n", file=sys.stderr)
