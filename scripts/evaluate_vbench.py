"""Rule evaluate_vbench."""
from tav_pipeline import logs

with logs.to_file(snakemake.log[0]):
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
