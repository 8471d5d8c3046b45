"""Rule generate_baseline_videos (a pretrained-only diffusers model of generate.baselines)."""
from tav_pipeline import logs
from tav_pipeline.generate import generate_baseline_step

groups = snakemake.params.groups
with logs.to_file(snakemake.log[0]):
    generate_baseline_step(
        snakemake.params.spec,
        snakemake.wildcards.model,
        dict(zip(groups, snakemake.input.prompts)),
        {g: snakemake.output[g] for g in groups},
        snakemake.params.seed,
        threads=snakemake.threads,
    )
