"""Rule fetch_video."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.fetch_video_step(snakemake.input.sample, snakemake.wildcards.video, snakemake.params.source, snakemake.output[0])
