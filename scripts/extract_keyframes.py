"""Rule extract_keyframes."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.extract_keyframes_step(
        snakemake.input.clip,
        snakemake.input.meta,
        snakemake.input.validation,
        snakemake.params.keyframes,
        snakemake.output.frames,
        snakemake.output.meta,
    )
