"""Rule plot_frame_strip."""
from tav_pipeline import figures, logs

with logs.to_file(snakemake.log[0]):
    figures.frame_strip_step(
        snakemake.input.folders,
        snakemake.input.per_video,
        snakemake.output[0],
        snakemake.params.strips,
        int(snakemake.wildcards.index),
        snakemake.params.epochs,
    )
