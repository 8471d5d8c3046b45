"""Rule build_demo_blip."""
from tav_pipeline import logs
from tav_pipeline.demo.captioner import CaptionerTraining, train_captioner

with logs.to_file(snakemake.log[0]):
    train_captioner(snakemake.output[0], CaptionerTraining(seed=snakemake.params.seed), snakemake.params.captions)
