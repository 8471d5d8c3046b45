"""Rule generate_videos: the test prompts through train.backend's sampler."""
from tav_pipeline import gpus, logs
from tav_pipeline.backends import generate_videos_step

groups = snakemake.params.groups
with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    generate_videos_step(
        snakemake.input.checkpoint[0] if snakemake.input.checkpoint else None,
        dict(zip(groups, snakemake.input.prompts)),
        {g: snakemake.output[g] for g in groups},
        snakemake.params.train,
        snakemake.params.generate,
        checkpoint=snakemake.wildcards.checkpoint,
        work_dir=snakemake.params.work,
        threads=snakemake.threads,
    )
