"""Rule cache_latents."""
from tav_pipeline import gpus, logs
from tav_pipeline.backends.diffusers.latents import cache_latents_step

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    cache_latents_step(snakemake.input.tav, snakemake.output[0], snakemake.params.train, threads=snakemake.threads)
