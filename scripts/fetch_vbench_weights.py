"""Rule fetch_vbench_weights."""
from tav_pipeline import logs

with logs.to_file(snakemake.log[0]):
    from tav_pipeline.metrics import vbench_weights

    vbench_weights.fetch_weights_step(snakemake.params.cache_dir, snakemake.params.dimensions)
