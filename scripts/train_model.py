"""Rules train_model (diffusers) and train_opensora (Open-Sora-Plan): one training job of train.backend."""
from tav_pipeline import gpus, logs
from tav_pipeline.backends import TrainJob, backend

with logs.to_file(snakemake.log[0]):
    gpus.claim(snakemake.resources.get("gpu", 0), rule=snakemake.rule)
    backend(snakemake.params.train["backend"]).train(
        TrainJob(
            inputs={name: [files] if isinstance(files, str) else list(files) for name, files in snakemake.input.items()},
            previous_dir=snakemake.input.previous[0] if snakemake.input.previous else None,
            checkpoint_dir=snakemake.output.checkpoint,
            work_dir=snakemake.params.work,
            train=snakemake.params.train,
            epoch=snakemake.params.epoch,
            threads=snakemake.threads,
            outputs={name: path for name, path in snakemake.output.items() if name != "checkpoint"},
        )
    )
