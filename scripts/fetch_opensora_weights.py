"""Rule fetch_opensora_weights: Open-Sora-Plan v1.3.0's transformer and WF-VAE, and mT5-XXL."""
from tav_pipeline import logs
from tav_pipeline.backends.opensora.fetch import fetch_opensora_weights_step

with logs.to_file(snakemake.log[0]):
    fetch_opensora_weights_step(snakemake.params.train)
