"""Rule validate_clip."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.validate_clip_step(
        snakemake.input.meta, snakemake.output[0], snakemake.params.validation, snakemake.params.cuts, threads=snakemake.threads
    )
