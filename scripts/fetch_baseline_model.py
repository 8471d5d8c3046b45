"""Rule fetch_baseline_model."""
from tav_pipeline import logs
from tav_pipeline.generate import fetch_baseline_step

with logs.to_file(snakemake.log[0]):
    fetch_baseline_step(snakemake.params.spec, snakemake.wildcards.model, snakemake.output[0])
