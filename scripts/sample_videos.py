"""Rule sample_videos."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.sample_videos_step(snakemake.input.metadata[0], snakemake.params.sample, snakemake.output.sample, snakemake.output.shares)
