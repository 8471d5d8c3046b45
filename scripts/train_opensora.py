"""Rule train_opensora (Open-Sora-Plan v1.3.1's own trainer)."""
from tav_pipeline import gpus, logs
from tav_pipeline.train.external import train_opensora_step

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    train_opensora_step(
        snakemake.input.data,
        snakemake.input.previous[0] if snakemake.input.previous else None,
        snakemake.output[0],
        snakemake.params.work,
        snakemake.params.train,
        snakemake.params.epoch,
    )
