"""Rule count_segments."""
from tav_pipeline import logs
from tav_pipeline.metrics import segments

with logs.to_file(snakemake.log[0]):
    segments.count_segments_step(
        snakemake.input.folder,
        snakemake.output[0],
        snakemake.params.segments,
        snakemake.params.cuts,
        snakemake.wildcards.model,
        snakemake.wildcards.checkpoint,
    )
