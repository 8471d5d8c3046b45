"""Rule generate_baseline_videos: one baseline-only diffusers model of generate.baselines, the
prompt group(s) of this job."""
from tav_pipeline import gpus, logs
from tav_pipeline.backends.diffusers.generate import generate_baseline_step

groups = snakemake.params.groups
with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    generate_baseline_step(
        snakemake.params.spec,
        snakemake.wildcards.model,
        dict(zip(groups, snakemake.input.prompts)),
        dict(zip(groups, snakemake.output)),
        snakemake.params.seed,
        threads=snakemake.threads,
    )
