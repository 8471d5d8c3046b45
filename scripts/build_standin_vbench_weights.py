"""Rule build_standin_vbench_weights."""
from tav_pipeline import logs

with logs.to_file(snakemake.log[0]):
    from tav_pipeline.metrics import standin_weights

    standin_weights.build_standin_weights_step(snakemake.params.cache_dir, snakemake.params.dimensions, snakemake.params.standin)
