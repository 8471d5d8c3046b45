"""Rule collect_rejects."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.collect_rejects(
        snakemake.input.fetched,
        snakemake.input.cuts,
        snakemake.input.validation,
        snakemake.params.clips,
        snakemake.output.rejects,
        snakemake.output.failures,
        sidecars=snakemake.input.clips,
        keyframes=snakemake.input.keyframes,
    )
