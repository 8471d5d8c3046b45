"""Rule fetch_diffusers_model."""
from tav_pipeline import logs
from tav_pipeline.backends.diffusers.families import fetch_pipeline

with logs.to_file(snakemake.log[0]):
    fetch_pipeline(snakemake.params.hub_id, snakemake.output[0], revision=snakemake.params.revision)
