"""Rule fetch_baseline_model: a baseline-only pipeline of generate.baselines into its folder."""
from tav_pipeline import logs
from tav_pipeline.train.families import fetch_pipeline

with logs.to_file(snakemake.log[0]):
    spec = snakemake.params.spec
    fetch_pipeline(spec["hub_id"], snakemake.output[0], revision=spec["revision"], rule=snakemake.rule)
