"""Rule detect_cuts."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.detect_cuts_step(
        snakemake.input.fetched, snakemake.output[0], snakemake.params.cuts, snakemake.wildcards.video, threads=snakemake.threads
    )
