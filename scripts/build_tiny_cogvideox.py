"""Rule build_tiny_cogvideox."""
from tav_pipeline import logs
from tav_pipeline.tiny_cogvideox import build_tiny_cogvideox

with logs.to_file(snakemake.log[0]):
    build_tiny_cogvideox(snakemake.output[0], seed=snakemake.params.seed)
