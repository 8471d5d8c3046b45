"""Rule fetch_metadata."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.fetch_metadata_step(snakemake.output[0], snakemake.params.url)
