"""Rule fetch_opensora: clone Open-Sora-Plan at the pinned commit."""
from tav_pipeline import logs
from tav_pipeline.backends.opensora.fetch import fetch_opensora

with logs.to_file(snakemake.log[0]):
    fetch_opensora(snakemake.output[0], snakemake.params.git_url, snakemake.params.commit)
