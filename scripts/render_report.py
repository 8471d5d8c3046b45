"""Rule render_report."""
from tav_pipeline import logs, report

with logs.to_file(snakemake.log[0]):
    report.render_report_step(
        snakemake.input.summary,
        snakemake.input.per_video,
        snakemake.input.chart,
        snakemake.input.strips,
        snakemake.output[0],
        snakemake.params.tables,
        snakemake.params.epochs,
        snakemake.params.report,
        snakemake.params.settings,
        train_model=snakemake.params.model,
    )
