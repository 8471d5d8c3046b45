"""Rule fetch_blip."""
from tav_pipeline import logs
from tav_pipeline.captioner import fetch_model

with logs.to_file(snakemake.log[0]):
    fetch_model(snakemake.params.hub_id, snakemake.params.revision, snakemake.output[0])
