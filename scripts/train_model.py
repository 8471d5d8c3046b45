"""Rule train_model (diffusers backend)."""
from tav_pipeline import gpus, logs
from tav_pipeline.train.loop import train_model_step

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    train_model_step(
        snakemake.input.tav,
        snakemake.input.latents or None,
        snakemake.input.previous[0] if snakemake.input.previous else None,
        snakemake.output.checkpoint,
        snakemake.params.work,
        snakemake.params.train,
        snakemake.params.epoch,
        threads=snakemake.threads,
        losses_tsv=snakemake.output.losses,
    )
