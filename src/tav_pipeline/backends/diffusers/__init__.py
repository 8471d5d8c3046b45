"""Backend ``diffusers``: any supported diffusers text-to-video pipeline (CogVideoX first),
post-trained in this package with the paper's recipe.

* :mod:`.latents`: the text and VAE latents cached once (rule ``cache_latents``).
* :mod:`.loop`: a training job under ``accelerate launch`` (rule ``train_model``).
* :mod:`.loss`: the objective; :mod:`.families`: what differs between pipeline families.
* :mod:`.generate`: generation through the pipeline, also of the pretrained-only models of
  ``generate.baselines``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tav_pipeline.locations import is_local_folder

GENERATION_KEYS = ("pretrained", "revision", "max_sequence_length")
"""``train.diffusers`` keys generation reads."""

if TYPE_CHECKING:
    from tav_pipeline.backends import GenerationJob, TrainJob
    from tav_pipeline.locations import Asset
    from tav_pipeline.train.checkpoint import TrainState
    from tav_pipeline.train.config import TrainConfig


class DiffusersBackend:
    name = "diffusers"
    env = "train-diffusers"
    training_rule = "train_model"
    training_outputs: tuple[str, ...] = ("losses",)

    def training_threads(self, num_gpus: int) -> int:
        return num_gpus  # one CPU thread per process: the work is on the GPUs

    def training_inputs(self, results: str, train: Mapping[str, Any]) -> dict[str, str | list[str]]:
        # the latent cache of the rule cache_latents, unless encoding happens on the fly
        latents: str | list[str] = f"{results}/latents/{{model}}" if train["diffusers"]["cache_latents"] else []
        return {"tav": f"{results}/tav.json", "latents": latents}

    def generation_settings(self, section: Mapping[str, Any]) -> dict[str, Any]:
        return {k: section[k] for k in GENERATION_KEYS if k in section}

    def model_paths(self, train: Mapping[str, Any]) -> list[str]:
        return [str(train["diffusers"]["pretrained"])]

    def assets(self, train: Mapping[str, Any], results: str) -> list[Asset]:
        from tav_pipeline.locations import Asset, under

        d = train["diffusers"]
        if not is_local_folder(d["pretrained"]) or under(d["pretrained"], results):
            return []
        return [
            Asset(
                "train.diffusers.pretrained",
                d["pretrained"],
                "fetch_diffusers_model",
                "the diffusers pipeline to post-train",
                f"hub {d['hub_id']}@{d['revision']}" if d["hub_id"] else "",
                "save_pretrained() of the pipeline there",
            )
        ]

    def check(self, cfg: TrainConfig) -> None:
        from tav_pipeline.backends.diffusers.families import model_index

        model_index(cfg.diffusers.pretrained, cfg.diffusers.revision, rule="fetch_diffusers_model")

    def train(self, job: TrainJob) -> TrainState:
        from tav_pipeline.backends.diffusers.loop import train_model_step

        latents = job.inputs.get("latents") or []
        return train_model_step(
            job.inputs["tav"][0],
            latents[0] if latents else None,
            job.previous_dir,
            job.checkpoint_dir,
            job.work_dir,
            dict(job.train),
            job.epoch,
            threads=job.threads,
            losses_tsv=(job.outputs or {}).get("losses"),
        )

    def generate(self, job: GenerationJob) -> dict[str, list[Path]]:
        from tav_pipeline.backends.diffusers.generate import generate_checkpoint

        return generate_checkpoint(job)


BACKEND = DiffusersBackend()
