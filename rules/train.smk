# Post-training (paper section 4): results/checkpoints/{model}/epoch_{N}/ for every N in
# train.epochs. Backend "opensora" runs Open-Sora-Plan v1.3.1's own trainer from a pinned checkout
# (the paper's setup); backend "diffusers" post-trains a diffusers text-to-video pipeline with the
# same recipe, from text and VAE latents cached once. Epoch N's job resumes from the configured
# epoch before it, so the epochs train one after another.
#
# A training job runs train.num_gpus data-parallel processes (paper: 1), one per GPU, under
# DeepSpeed ZeRO-2. It holds that many of `--resources gpu=K` on a workstation, and on SLURM asks
# for `gres: gpu:<type>:<num_gpus>` itself (the type as TAV_SLURM_GPU_GRES names it, default
# h200): the count is a workflow setting, which profiles/slurm cannot see.
import re

from tav_pipeline.train import targets as TT

TRAIN = config["train"]
TRAIN_MODEL = re.escape(TRAIN["model"])
TRAIN_GPUS = TT.training_gpus(TRAIN)
# What the trained model's training and generation read besides the checkpoints: the checkout and
# weights (opensora), or the pipeline folder (diffusers), as asset inputs.
if TRAIN["backend"] == "opensora":
    MODEL_INPUTS = [p for a in ASSETS if a.key.startswith("train.opensora.") for p in asset(a.path)]
else:
    MODEL_INPUTS = asset(TRAIN["diffusers"]["pretrained"])


if to_fetch("fetch_diffusers_model"):

    rule fetch_diffusers_model:
        output:
            directory(to_fetch("fetch_diffusers_model")[0]),
        params:
            hub_id=TRAIN["diffusers"]["hub_id"],
            revision=TRAIN["diffusers"]["revision"],
        resources:
            downloads=1,
        log:
            log_path("fetch_diffusers_model"),
        conda:
            f"{ENVS}/train-diffusers.yaml"
        script:
            "../scripts/fetch_diffusers_model.py"


if TRAIN["backend"] == "diffusers":

    rule cache_latents:
        input:
            tav=R("tav.json"),
            model=asset(TRAIN["diffusers"]["pretrained"]),
        output:
            directory(R("latents/{model}")),
        params:
            train=TT.caching_settings(TRAIN),
        wildcard_constraints:
            model=TRAIN_MODEL,
        # torch CPU threads: the work is on the GPU (and on a 2-core machine one thread is faster)
        threads: 1
        resources:
            gpu=1,
        log:
            log_path("cache_latents", "{model}"),
        benchmark:
            R("benchmarks/cache_latents/{model}.tsv")
        conda:
            f"{ENVS}/train-diffusers.yaml"
        script:
            "../scripts/cache_latents.py"

    rule train_model:
        input:
            tav=R("tav.json"),
            latents=R("latents/{model}") if TRAIN["diffusers"]["cache_latents"] else [],
            model=asset(TRAIN["diffusers"]["pretrained"]),
            previous=lambda wc: TT.previous_checkpoint(RESULTS, TRAIN, wc.model, wc.epoch),
        output:
            checkpoint=directory(R("checkpoints/{model}/epoch_{epoch}")),
            losses=report(
                R("train/{model}/losses_epoch_{epoch}.tsv"),
                category="Training",
                labels={"model": "{model}", "epoch": "{epoch}", "table": "loss per step"},
            ),
        params:
            train=lambda wc: TT.epoch_settings(TRAIN, wc.epoch),
            epoch=lambda wc: int(wc.epoch),
            work=lambda wc: R(f"train/{wc.model}/work/epoch_{wc.epoch}"),
        wildcard_constraints:
            model=TRAIN_MODEL,
            epoch=r"\d+",
        # one CPU thread per process: the work is on the GPUs
        threads: TRAIN_GPUS
        resources:
            gpu=TRAIN_GPUS,
            gres=TT.slurm_gres(TRAIN_GPUS),
        log:
            log_path("train_model", "{model}/epoch_{epoch}"),
        benchmark:
            R("benchmarks/train_model/{model}/epoch_{epoch}.tsv")
        conda:
            f"{ENVS}/train-diffusers.yaml"
        script:
            "../scripts/train_model.py"

else:

    if to_fetch("fetch_opensora"):

        rule fetch_opensora:
            output:
                directory(to_fetch("fetch_opensora")[0]),
            params:
                git_url=TRAIN["opensora"]["git_url"],
                commit=TRAIN["opensora"]["commit"],
            resources:
                downloads=1,
            log:
                log_path("fetch_opensora"),
            conda:
                f"{ENVS}/train-opensora.yaml"
            script:
                "../scripts/fetch_opensora.py"

    if to_fetch("fetch_opensora_weights"):

        rule fetch_opensora_weights:
            output:
                [directory(p) for p in to_fetch("fetch_opensora_weights")],
            params:
                train=TRAIN,
            resources:
                downloads=1,
            log:
                log_path("fetch_opensora_weights"),
            conda:
                f"{ENVS}/train-opensora.yaml"
            script:
                "../scripts/fetch_opensora_weights.py"

    rule train_opensora:
        input:
            data=R("opensora/data.txt"),
            annotation=R("opensora/tav_train.json"),
            opensora=MODEL_INPUTS,
            previous=lambda wc: TT.previous_checkpoint(RESULTS, TRAIN, wc.model, wc.epoch),
        output:
            directory(R("checkpoints/{model}/epoch_{epoch}")),
        params:
            train=lambda wc: TT.epoch_settings(TRAIN, wc.epoch),
            epoch=lambda wc: int(wc.epoch),
            work=lambda wc: R(f"train/{wc.model}/work/epoch_{wc.epoch}"),
        wildcard_constraints:
            model=TRAIN_MODEL,
            epoch=r"\d+",
        # Open-Sora-Plan's 8 dataloader workers per process
        threads: 8 * TRAIN_GPUS
        resources:
            gpu=TRAIN_GPUS,
            gres=TT.slurm_gres(TRAIN_GPUS),
        log:
            log_path("train_opensora", "{model}/epoch_{epoch}"),
        benchmark:
            R("benchmarks/train_opensora/{model}/epoch_{epoch}.tsv")
        conda:
            f"{ENVS}/train-opensora.yaml"
        script:
            "../scripts/train_opensora.py"
