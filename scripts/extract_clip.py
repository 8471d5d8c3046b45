"""Rule extract_clip."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.extract_clip_step(
        snakemake.input.cuts, snakemake.output.clip, snakemake.output.meta, snakemake.params.clips, threads=snakemake.threads
    )
