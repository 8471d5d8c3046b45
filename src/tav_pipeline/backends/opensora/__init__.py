"""Backend ``opensora``: Open-Sora-Plan v1.3.1's own trainer and sampler, run from a pinned
checkout as the paper ran them (:mod:`.upstream` lists what this relies on of that version).

* :mod:`.checks`: the checkout, settings and weights, checked before anything is launched.
* :mod:`.annotation`: the trainer's annotation, with upstream's dataset filter repeated ahead.
* :mod:`.commands`: the trainer's and sampler's argv and environment.
* :mod:`.train`: a training job (the relaunch loop), rule ``train_opensora``.
* :mod:`.sample`: generation through ``opensora.sample.sample``.
* :mod:`.fetch`: the checkout and weights downloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tav_pipeline.backends.opensora.upstream import TEXT_ENCODER

if TYPE_CHECKING:
    from tav_pipeline.backends import GenerationJob, TrainJob
    from tav_pipeline.locations import Asset
    from tav_pipeline.train.checkpoint import TrainState
    from tav_pipeline.train.config import TrainConfig

TRAINING_ONLY_KEYS = (
    "git_url", "weights_hub_id", "dataloader_num_workers", "use_decord", "allow_tf32", "report_to",
    "relaunch", "data_order", "unusable_clips", "extra_args",
)  # fmt: skip
"""``train.opensora`` keys only the trainer (or a fetch) reads; the sampler takes the rest."""
DATALOADER_WORKERS = 8
"""Open-Sora-Plan's dataloader workers per process (the threads its training rule holds)."""


def encoder_cache(osp: Mapping[str, Any]) -> str:
    """Where the hub cache of ``cache_dir`` holds the mT5-XXL text encoder."""
    return str(Path(osp["cache_dir"]) / ("models--" + str(osp["text_encoder_name_1"]).replace("/", "--")))


class OpenSoraBackend:
    name = "opensora"
    env = "train-opensora"
    training_rule = "train_opensora"
    training_outputs: tuple[str, ...] = ()

    def training_threads(self, num_gpus: int) -> int:
        return DATALOADER_WORKERS * num_gpus

    def training_inputs(self, results: str, train: Mapping[str, Any]) -> dict[str, str | list[str]]:
        # written by the rule build_tav (tav_pipeline.dataset's Open-Sora-Plan export)
        return {"data": f"{results}/opensora/data.txt", "annotation": f"{results}/opensora/tav_train.json"}

    def generation_settings(self, section: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in section.items() if k not in TRAINING_ONLY_KEYS}

    def model_paths(self, train: Mapping[str, Any]) -> list[str]:
        return [a.path for a in self.assets(train, "")]

    def assets(self, train: Mapping[str, Any], results: str) -> list[Asset]:
        from tav_pipeline.locations import Asset

        osp = train["opensora"]
        weights = f"hub {osp['weights_hub_id']}"
        out = [
            Asset(
                "train.opensora.repo",
                osp["repo"],
                "fetch_opensora",
                "Open-Sora-Plan's source checkout",
                f"{osp['git_url']} at {osp['commit']}",
                f"git clone {osp['git_url']} there and check out {osp['commit']}",
            ),
            Asset(
                "train.opensora.pretrained",
                osp["pretrained"],
                "fetch_opensora_weights",
                "Open-Sora-Plan's text-to-video weights",
                weights,
                f"the {Path(osp['pretrained']).name} folder of {osp['weights_hub_id']}",
            ),
            Asset(
                "train.opensora.ae_path",
                osp["ae_path"],
                "fetch_opensora_weights",
                "Open-Sora-Plan's WF-VAE",
                weights,
                f"the {Path(osp['ae_path']).name} folder of {osp['weights_hub_id']}",
            ),
        ]
        if not Path(osp["text_encoder_name_1"]).is_dir():
            out.append(
                Asset(
                    "train.opensora.text_encoder_name_1",
                    encoder_cache(osp),
                    "fetch_opensora_weights",
                    "the mT5-XXL text encoder (hub cache)",
                    f"hub {TEXT_ENCODER}",
                    f"huggingface-cli download {TEXT_ENCODER} --cache-dir {osp['cache_dir']}",
                )
            )
        return out

    def check(self, cfg: TrainConfig) -> None:
        from tav_pipeline.backends.opensora.checks import check_checkout, check_settings, check_weights

        check_checkout(cfg)
        check_settings(cfg)
        check_weights(cfg)

    def train(self, job: TrainJob) -> TrainState:
        from tav_pipeline.backends.opensora.train import train_opensora_step

        return train_opensora_step(
            job.inputs["data"][0], job.previous_dir, job.checkpoint_dir, job.work_dir, dict(job.train), job.epoch
        )

    def generate(self, job: GenerationJob) -> dict[str, list[Path]]:
        from tav_pipeline.backends.opensora.sample import sample_opensora_step

        return sample_opensora_step(
            job.checkpoint_dir,
            job.prompt_files,
            job.out_dirs,
            job.work_dir,
            dict(job.train),
            dict(job.generate),
            job.checkpoint,
        )


BACKEND = OpenSoraBackend()
