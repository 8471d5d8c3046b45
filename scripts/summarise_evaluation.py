"""Rule summarise_evaluation."""
from tav_pipeline import logs, tables

with logs.to_file(snakemake.log[0]):
    tables.summarise_step(
        snakemake.input.segments,
        snakemake.input.vbench_csv,
        snakemake.input.vbench_json,
        snakemake.output.summary,
        snakemake.output.per_video,
    )
