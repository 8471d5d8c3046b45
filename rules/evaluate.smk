# Metrics of generated videos (paper section 5), per (model, checkpoint, group) of
# results/generated/{model}/{checkpoint}/{group}/ ({i}.mp4 + prompts.json, directory outputs of
# generate_videos): average segments with the cut detector, the four VBench dimensions, and one
# summary of every metric.
import os

from tav_pipeline.metrics.vbench_weights import STANDIN_MARKER

# EVAL_VBENCH, EVAL_TABLES, EVAL_STRIPS and the key lists are in common.smk.
EVAL_WEIGHTS = [str(p) for p in weight_paths(EVAL_VBENCH.cache_dir, EVAL_VBENCH.dimensions)]
EVAL_GENERATED = R("generated/{model}/{checkpoint}/{group}")
EVAL_OUT = R("eval/{model}/{checkpoint}/{group}")


if EVAL_VBENCH.weights == "standin":

    rule build_standin_vbench_weights:
        output:
            EVAL_WEIGHTS,
            marker=f"{EVAL_VBENCH.cache_dir}/{STANDIN_MARKER}",
        params:
            cache_dir=lambda wildcards, output: os.path.dirname(output.marker),
            dimensions=list(EVAL_VBENCH.dimensions),
            standin=EVAL_VBENCH.standin,
        threads: 2
        log:
            log_path("build_standin_vbench_weights"),
        conda:
            f"{ENVS}/vbench.yaml"
        script:
            "../scripts/build_standin_vbench_weights.py"

elif to_fetch("fetch_vbench_weights"):

    rule fetch_vbench_weights:
        output:
            to_fetch("fetch_vbench_weights"),
        params:
            cache_dir=lambda wildcards: EVAL_VBENCH.cache_dir,
            dimensions=list(EVAL_VBENCH.dimensions),
        resources:
            downloads=1,
        log:
            log_path("fetch_vbench_weights"),
        conda:
            f"{ENVS}/vbench.yaml"
        script:
            "../scripts/fetch_vbench_weights.py"


rule count_segments:
    input:
        folder=EVAL_GENERATED,
    output:
        f"{EVAL_OUT}/segments.csv",
    params:
        segments=config["evaluate"]["segments"],
        cuts=config["cuts"],
    wildcard_constraints:
        checkpoint=r"baseline|epoch_\d+",
    log:
        log_path("count_segments", "{model}/{checkpoint}/{group}"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/count_segments.py"


rule evaluate_vbench:
    input:
        folder=EVAL_GENERATED,
        weights=[ancient(p) for p in EVAL_WEIGHTS],
    output:
        csv=f"{EVAL_OUT}/vbench.csv",
        json=f"{EVAL_OUT}/vbench.json",
    params:
        vbench=config["evaluate"]["vbench"],
        work=lambda wildcards, output: os.path.join(os.path.dirname(output.csv), "vbench_work"),
    wildcard_constraints:
        checkpoint=r"baseline|epoch_\d+",
    threads: 2
    resources:
        gpu=1,
    log:
        log_path("evaluate_vbench", "{model}/{checkpoint}/{group}"),
    benchmark:
        R("benchmarks/evaluate_vbench/{model}/{checkpoint}/{group}.tsv")
    conda:
        f"{ENVS}/vbench.yaml"
    script:
        "../scripts/evaluate_vbench.py"


rule summarise_evaluation:
    input:
        segments=[f"{EVAL_OUT}/segments.csv".format(model=m, checkpoint=c, group=g) for m, c, g in EVAL_SEGMENT_KEYS],
        vbench_csv=[f"{EVAL_OUT}/vbench.csv".format(model=m, checkpoint=c, group=g) for m, c, g in EVAL_VBENCH_KEYS],
        vbench_json=[f"{EVAL_OUT}/vbench.json".format(model=m, checkpoint=c, group=g) for m, c, g in EVAL_VBENCH_KEYS],
    output:
        summary=report(R("eval/summary.csv"), caption="report/eval_summary.rst", category="Evaluation"),
        per_video=report(R("eval/per_video.csv"), caption="report/eval_per_video.rst", category="Evaluation"),
    log:
        log_path("summarise_evaluation"),
    conda:
        f"{ENVS}/report.yaml"
    script:
        "../scripts/summarise_evaluation.py"
