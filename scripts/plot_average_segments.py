"""Rule plot_average_segments."""
from tav_pipeline import figures, logs

with logs.to_file(snakemake.log[0]):
    figures.average_segments_step(snakemake.input.summary, snakemake.output[0], snakemake.params.tables, snakemake.params.epochs, snakemake.params.model)
