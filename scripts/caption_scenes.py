"""Rule caption_scenes."""
from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.caption_scenes_step(snakemake.input.keyframes, snakemake.input.validation, snakemake.params.captions, snakemake.output[0])
