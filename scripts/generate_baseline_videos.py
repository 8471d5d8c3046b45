"""Rule generate_baseline_videos: one baseline-only diffusers model, one prompt group."""
from tav_pipeline import logs
from tav_pipeline.generate import generate_baseline_step

groups = snakemake.params.groups
with logs.to_file(snakemake.log[0]):
    generate_baseline_step(
        snakemake.params.spec,
        snakemake.wildcards.model,
        dict(zip(groups, snakemake.input.prompts)),
        {g: snakemake.output[i] for i, g in enumerate(groups)},
        snakemake.params.seed,
        threads=snakemake.threads,
    )
