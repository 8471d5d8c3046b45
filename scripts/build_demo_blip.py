"""Rule build_demo_blip."""
from tav_pipeline import logs
from tav_pipeline.tiny_models import build_tiny_blip

with logs.to_file(snakemake.log[0]):
    build_tiny_blip(snakemake.output[0], seed=snakemake.params.seed)
