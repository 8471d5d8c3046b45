"""Rule fetch_baseline_model (params.model: the generate.baselines entry whose pretrained folder is output[0])."""
from tav_pipeline import logs
from tav_pipeline.backends.diffusers.generate import fetch_baseline_step

with logs.to_file(snakemake.log[0]):
    fetch_baseline_step(snakemake.params.spec, snakemake.params.model, snakemake.output[0])
