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
#
# The backend (tav_pipeline.backends) names the training rule and gives its inputs, threads and
# conda env; the rules only one backend has (latent cache, fetches) are in rules/backend_<name>.smk.
import re

from tav_pipeline.backends import backend
from tav_pipeline.train import targets as TT

TRAIN = config["train"]
TRAIN_MODEL = re.escape(TRAIN["model"])
TRAIN_GPUS = TT.training_gpus(TRAIN)
BACKEND = backend(TRAIN["backend"])
# What the trained model's training and generation read besides the checkpoints: the checkout and
# weights (opensora), or the pipeline folder (diffusers), as asset inputs.
MODEL_INPUTS = [p for path in BACKEND.model_paths(TRAIN) for p in asset(path)]


# The checkpoint, and the per-step losses of a backend that writes them (diffusers).
TRAINING_OUTPUTS = {"checkpoint": directory(R("checkpoints/{model}/epoch_{epoch}"))}
if "losses" in BACKEND.training_outputs:
    TRAINING_OUTPUTS["losses"] = report(
        R("train/{model}/losses_epoch_{epoch}.tsv"),
        category="Training",
        labels={"model": "{model}", "epoch": "{epoch}", "table": "loss per step"},
    )


# The rules only this backend has (downloads, cached inputs): rules/backend_<name>.smk.
include: f"backend_{BACKEND.name}.smk"


rule:
    name:
        BACKEND.training_rule
    input:
        **BACKEND.training_inputs(RESULTS, TRAIN),
        model=MODEL_INPUTS,
        previous=lambda wc: TT.previous_checkpoint(RESULTS, TRAIN, wc.model, wc.epoch),
    output:
        **TRAINING_OUTPUTS,
    params:
        train=lambda wc: TT.epoch_settings(TRAIN, wc.epoch),
        epoch=lambda wc: int(wc.epoch),
        work=lambda wc: R(f"train/{wc.model}/work/epoch_{wc.epoch}"),
    wildcard_constraints:
        model=TRAIN_MODEL,
        epoch=r"\d+",
    threads: BACKEND.training_threads(TRAIN_GPUS)
    resources:
        gpu=TRAIN_GPUS,
        gres=TT.slurm_gres(TRAIN_GPUS),
    log:
        log_path(BACKEND.training_rule, "{model}/epoch_{epoch}"),
    benchmark:
        R(f"benchmarks/{BACKEND.training_rule}/{{model}}/epoch_{{epoch}}.tsv")
    conda:
        f"{ENVS}/{BACKEND.env}.yaml"
    script:
        "../scripts/train_model.py"
