"""Rule pretrain_demo_cogvideox."""
from tav_pipeline import logs
from tav_pipeline.demo.pretrain import PretrainConfig, pretrain_cogvideox

with logs.to_file(snakemake.log[0]):
    pretrain_cogvideox(snakemake.output[0], PretrainConfig(seed=snakemake.params.seed, **snakemake.params.pretrain))
