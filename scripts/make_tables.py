"""Rule make_tables."""
from tav_pipeline import logs, tables

with logs.to_file(snakemake.log[0]):
    tables.make_tables_step(
        snakemake.input.summary,
        snakemake.params.tables,
        snakemake.params.epochs,
        snakemake.params.model,
        snakemake.output.table1,
        snakemake.output.table1_vs_paper,
        snakemake.output.table2,
        snakemake.output.table2_vs_paper,
    )
