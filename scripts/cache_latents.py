"""Rule cache_latents."""
from tav_pipeline import logs
from tav_pipeline.train.latents import cache_latents_step

with logs.to_file(snakemake.log[0]):
    cache_latents_step(snakemake.input.tav, snakemake.output[0], snakemake.params.train, threads=snakemake.threads)
