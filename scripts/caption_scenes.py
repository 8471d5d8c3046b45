"""Rule caption_scenes."""
from tav_pipeline import gpus, logs, steps

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    steps.caption_scenes_step(snakemake.input.keyframes, snakemake.input.validation, snakemake.params.captions, snakemake.output[0])
