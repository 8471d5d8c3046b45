"""Rule evaluate_vbench."""
from tav_pipeline import gpus, logs

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    from tav_pipeline.metrics import vbench

    vbench.evaluate_vbench_step(
        snakemake.input.folder,
        snakemake.output.csv,
        snakemake.output.json,
        snakemake.params.vbench,
        snakemake.wildcards.model,
        snakemake.wildcards.checkpoint,
        snakemake.params.work,
        threads=snakemake.threads,
    )
