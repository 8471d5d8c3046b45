"""Rule build_tiny_easyanimate."""
from tav_pipeline import logs
from tav_pipeline.tiny_easyanimate import build_tiny_easyanimate

with logs.to_file(snakemake.log[0]):
    build_tiny_easyanimate(snakemake.output[0], seed=snakemake.params.seed)
