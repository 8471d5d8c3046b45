"""Generation through a diffusers pipeline: the post-trained model of the diffusers backend, at
the baseline and every checkpoint, and the pretrained-only models the tables compare with
(``generate.baselines``). The layout of the outputs is :mod:`tav_pipeline.generate`'s.

A run is a :class:`DiffusersRun`: the post-trained model's from ``train:`` and ``generate:``
(:meth:`DiffusersRun.for_checkpoint`), a baseline-only model's from its ``generate.baselines`` entry
(:meth:`DiffusersRun.for_baseline`). Both go through :func:`generate_run`: load the pipeline (with a
checkpoint's transformer swapped in, the EMA weights by default, as Open-Sora-Plan samples
``model_ema``), call the pipeline class with a seeded CPU generator per video, write the mp4s and
the manifest. Video ``i`` of every group and checkpoint starts from the same noise (seed
``generate.seed + i``), so checkpoints are compared on paired samples.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.generate import manifest_doc, read_prompts, write_doc
from tav_pipeline.train.config import TEXT_TO_VIDEO_ARGUMENTS, BaselineModel, GenerateConfig, TrainConfig

if TYPE_CHECKING:
    from tav_pipeline.backends import GenerationJob

log = logging.getLogger(__name__)

FETCH_BASELINE_RULE = "fetch_baseline_model"
"""The rule that downloads a baseline's ``hub_id`` into its local ``pretrained`` folder."""


@dataclass(frozen=True)
class DiffusersRun:
    """One generation run through a diffusers pipeline: which pipeline, how every video is made,
    and what the manifests record."""

    model: str
    """Name in ``results/generated/{model}``."""
    checkpoint: str
    """``baseline`` or ``epoch_{N}``."""
    weights: str
    """What generates: ``pretrained`` (as released), or a checkpoint's ``ema`` / ``model`` weights."""
    pretrained: str
    revision: str
    fetch_rule: str
    """The rule that provides a missing local ``pretrained`` folder."""
    num_frames: int
    height: int
    width: int
    fps: float
    seed: int
    """Video ``i`` uses seed ``seed + i``."""
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str
    device: str
    dtype: str
    max_sequence_length: int
    """Prompt tokens where ``__call__`` takes ``max_sequence_length``; 0: the transformer's
    ``max_text_seq_length`` when it has one (CogVideoX), else the pipeline's own default."""
    keys: Mapping[str, str]
    """Config key of each setting above, for error messages; ``""``: the section of the rest."""
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Further ``__call__`` arguments; the pipeline must take every one."""
    optional_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Further ``__call__`` arguments passed only where the pipeline takes them."""
    batch_size: int = 1
    """Prompts per pipeline call (``generate.diffusers.batch_size``); each video keeps its own
    generator, so the batch size changes no video."""

    def key(self, setting: str) -> str:
        """The config key ``setting`` comes from."""
        return self.keys.get(setting) or f"{self.keys['']}.{setting}"

    @property
    def settings(self) -> dict[str, Any]:
        """The manifest's ``settings``: the sampler's knobs (size, frames and seeds have their own keys)."""
        return {
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "negative_prompt": self.negative_prompt,
            **self.optional_kwargs,
            **self.call_kwargs,
        }

    @classmethod
    def for_checkpoint(
        cls, train: TrainConfig, gen: GenerateConfig, checkpoint: str, pretrained: str | None = None
    ) -> DiffusersRun:
        """``train.model`` at ``checkpoint``: frames, size and fps of ``train:``, the sampler of
        ``generate.diffusers``, ``pretrained`` defaulting to ``train.diffusers.pretrained``."""
        s = gen.diffusers
        return cls(
            model=train.model,
            checkpoint=checkpoint,
            weights="pretrained" if checkpoint == "baseline" else gen.weights,
            pretrained=pretrained or train.diffusers.pretrained,
            revision=train.diffusers.revision,
            fetch_rule="fetch_diffusers_model",
            num_frames=train.num_frames,
            height=train.height,
            width=train.width,
            fps=train.fps,
            seed=gen.seed,
            num_inference_steps=s.num_inference_steps,
            guidance_scale=s.guidance_scale,
            negative_prompt=s.negative_prompt,
            device=s.device,
            dtype=s.dtype,
            max_sequence_length=train.diffusers.max_sequence_length,
            keys={
                "": "generate.diffusers",
                "num_frames": "train.num_frames",
                "height": "train.height",
                "width": "train.width",
                "pretrained": "train.diffusers.pretrained",
                "seed": "generate.seed",
            },
            # a CogVideoX argument, recorded in every manifest of the section
            optional_kwargs={"use_dynamic_cfg": s.use_dynamic_cfg},
            batch_size=s.batch_size,
        )

    @classmethod
    def for_baseline(cls, b: BaselineModel, seed: int) -> DiffusersRun:
        """The pretrained-only model ``b`` (checkpoint ``baseline``, weights ``pretrained``)."""
        return cls(
            model=b.name,
            checkpoint="baseline",
            weights="pretrained",
            pretrained=b.pretrained,
            revision=b.revision,
            fetch_rule=FETCH_BASELINE_RULE,
            num_frames=b.num_frames,
            height=b.height,
            width=b.width,
            fps=float(b.fps),
            seed=seed,
            num_inference_steps=b.num_inference_steps,
            guidance_scale=float(b.guidance_scale),
            negative_prompt=b.negative_prompt,
            device=b.device,
            dtype=b.dtype,
            max_sequence_length=0,
            keys={"": f"generate.baselines.{b.name}", "seed": "generate.seed"},
            call_kwargs=dict(b.call_kwargs),
        )


def write_run_manifest(folder: str | Path, run: DiffusersRun, *, group: str, prompts: Sequence[str]) -> Path:
    """``prompts.json`` of a group folder generated by ``run``."""
    doc = manifest_doc(
        group=group,
        prompts=prompts,
        seeds=[run.seed + i for i in range(len(prompts))],
        model=run.model,
        backend="diffusers",
        checkpoint=run.checkpoint,
        weights=run.weights,
        num_frames=run.num_frames,
        height=run.height,
        width=run.width,
        fps=run.fps,
        settings=run.settings,
    )
    return write_doc(folder, doc)


def load_pipeline(run: DiffusersRun, transformer_dir: str | Path | None = None) -> Any:
    """The pipeline of ``run.pretrained`` (any diffusers pipeline class, from its
    ``model_index.json``) on the run's device and dtype; with ``transformer_dir`` (a checkpoint's
    ``model_ema`` or ``model`` folder) its transformer replaces the pretrained one.

    Raises:
        MissingAssetError: a local ``pretrained`` folder without ``model_index.json`` (naming
            ``run.fetch_rule``), or a hub id that cannot be fetched.
        ConfigError: a checkpoint of a pipeline the diffusers backend cannot post-train.
    """
    import torch

    from tav_pipeline.backends.diffusers.families import DTYPES, FAMILIES, _diffusers, model_index
    from tav_pipeline.devices import resolve_device

    device = torch.device(resolve_device(run.device, key=run.key("device")))
    dtype = (torch.bfloat16 if device.type == "cuda" else torch.float32) if run.dtype == "auto" else DTYPES[run.dtype]
    index = model_index(run.pretrained, run.revision, rule=run.fetch_rule)
    kwargs: dict[str, Any] = {"dtype": dtype, "revision": run.revision}
    if transformer_dir is not None:
        name = str(index.get("_class_name", ""))
        if name not in FAMILIES:
            raise ConfigError(run.key("pretrained"), f"{name} is not a supported pipeline {sorted(FAMILIES)}")
        family = FAMILIES[name]()
        kwargs[family.transformer_subfolder] = family.transformer_cls().from_pretrained(
            str(transformer_dir), dtype=dtype
        )
    pipe = _diffusers().DiffusionPipeline.from_pretrained(run.pretrained, **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_arguments(pipe: Any, run: DiffusersRun) -> dict[str, Any]:
    """The ``__call__`` arguments every video of ``run`` shares (all but ``prompt`` and ``generator``).

    The negative prompt is passed as a string even when empty (CogVideoX reads ``None`` as ``""``;
    EasyAnimate needs a string whenever guidance is on).

    Raises:
        ConfigError: the pipeline is no text-to-video pipeline, or takes no argument named in
            ``run.call_kwargs`` (or a non-empty negative prompt).
    """
    name = type(pipe).__name__
    accepted = set(inspect.signature(pipe.__call__).parameters)
    missing = [k for k in TEXT_TO_VIDEO_ARGUMENTS if k not in accepted]
    if missing:
        raise ConfigError(
            run.key("pretrained"), f"{name} is no text-to-video pipeline: its __call__ takes no {', '.join(missing)}"
        )
    call: dict[str, Any] = {
        "num_frames": run.num_frames,
        "height": run.height,
        "width": run.width,
        "num_inference_steps": run.num_inference_steps,
        "guidance_scale": run.guidance_scale,
        "output_type": "np",
    }
    if "negative_prompt" in accepted:
        call["negative_prompt"] = run.negative_prompt
    elif run.negative_prompt:
        raise ConfigError(run.key("negative_prompt"), f"{name}.__call__ takes no negative prompt")
    if "max_sequence_length" in accepted and "max_sequence_length" not in run.call_kwargs:
        if run.max_sequence_length:
            call["max_sequence_length"] = run.max_sequence_length
        elif hasattr(pipe, "transformer") and hasattr(pipe.transformer.config, "max_text_seq_length"):
            call["max_sequence_length"] = int(pipe.transformer.config.max_text_seq_length)
    call.update({k: v for k, v in run.optional_kwargs.items() if k in accepted})
    for k, v in run.call_kwargs.items():
        if k not in accepted:
            raise ConfigError(run.key(f"call_kwargs.{k}"), f"{name}.__call__ takes no argument {k!r}")
        call[k] = v
    return call


def generate_group(pipe: Any, prompts: Sequence[str], out_dir: str | Path, run: DiffusersRun) -> list[Path]:
    """Generate ``{i}.mp4`` for every prompt, seed ``run.seed + i``, at ``run.fps``, ``run.batch_size``
    prompts per pipeline call. Every prompt of a call has its own CPU generator (the pipeline draws
    each video's initial noise, and any sampler noise, from its own), so video ``i`` is the same
    whatever the batch size.

    Raises:
        ConfigError: the pipeline made another frame count or size than the run asks for (the
            model needs, say, ``4k+1`` frames or sizes of a multiple of 16).
    """
    import numpy as np
    import torch

    from tav_pipeline.video import encode_frames

    shared = call_arguments(pipe, run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    size = max(1, run.batch_size)
    bar = tqdm(total=len(prompts), desc=f"generate {run.model} {out.name}", unit="video")
    for first in range(0, len(prompts), size):
        batch = list(prompts[first : first + size])
        generators = [torch.Generator(device="cpu").manual_seed(run.seed + first + k) for k in range(len(batch))]
        with torch.no_grad():
            videos = pipe(prompt=batch, generator=generators, **shared).frames
        for k, frames in enumerate(videos):
            video = (np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
            if video.shape[:3] != (run.num_frames, run.height, run.width):
                raise ConfigError(
                    run.key("num_frames"),
                    f"{type(pipe).__name__} made {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}, not "
                    f"{run.num_frames} of {run.height}x{run.width}: the model takes another frame count or size",
                )
            path = out / f"{first + k}.mp4"
            encode_frames(list(video), path, fps=float(run.fps))
            paths.append(path)
        bar.update(len(batch))
    bar.close()
    return paths


def generate_run(
    run: DiffusersRun,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    transformer_dir: str | Path | None = None,
    threads: int = 0,
) -> dict[str, list[Path]]:
    """Every group's prompts through the run's pipeline: ``{i}.mp4`` and ``prompts.json`` per group.

    Arguments:
        run: the model, checkpoint and sampler.
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/{checkpoint}/{group}``.
        transformer_dir: a checkpoint's weights folder, or ``None`` for the pretrained transformer.
        threads: torch CPU threads (0: torch's default).

    Returns:
        group -> the videos written.
    """
    if set(prompt_files) != set(out_dirs):
        raise ConfigError(
            "generate.groups", f"prompt files {sorted(prompt_files)} and outputs {sorted(out_dirs)} differ"
        )
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    prompts = {group: read_prompts(path) for group, path in prompt_files.items()}
    pipe = load_pipeline(run, transformer_dir)
    log.info(
        "%s %s: %s from %s on %s, %d frames %dx%d, %d steps, guidance %.2f",
        run.model,
        run.checkpoint,
        type(pipe).__name__,
        run.pretrained,
        pipe.device,
        run.num_frames,
        run.height,
        run.width,
        run.num_inference_steps,
        run.guidance_scale,
    )
    results = {}
    for group, lines in prompts.items():
        results[group] = generate_group(pipe, lines, out_dirs[group], run)
        write_run_manifest(out_dirs[group], run, group=group, prompts=lines)
        log.info("group %s: %d video(s) in %s", group, len(lines), out_dirs[group])
    return results


def generate_checkpoint(job: GenerationJob) -> dict[str, list[Path]]:
    """Rule ``generate_videos`` with ``train.backend: diffusers``: every group's test prompts
    through the pipeline ``train.diffusers.pretrained``, with the checkpoint's transformer (its
    ``generate.weights``) swapped in unless it is the baseline."""
    from tav_pipeline.train.checkpoint import weights_dir

    train_cfg = TrainConfig.from_dict(dict(job.train))
    gen = GenerateConfig.from_dict(dict(job.generate))
    run = DiffusersRun.for_checkpoint(train_cfg, gen, job.checkpoint)
    transformer_dir = None if job.checkpoint_dir is None else weights_dir(job.checkpoint_dir, gen.weights)
    return generate_run(run, job.prompt_files, job.out_dirs, transformer_dir, job.threads)


def generate_baseline_step(
    spec: Mapping[str, Any],
    model: str,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    seed: int,
    threads: int = 0,
) -> dict[str, list[Path]]:
    """Rule ``generate_baseline_videos``: every group's test prompts through the pretrained-only
    model ``model`` (``generate.baselines.<model>``), as checkpoint ``baseline``.

    Arguments:
        spec: the model's ``generate.baselines`` entry.
        model: its name (``results/generated/{model}``).
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/baseline/{group}``.
        seed: ``generate.seed`` (video ``i`` uses ``seed + i``, as every other model).
        threads: torch CPU threads (0: torch's default).

    Returns:
        group -> the videos written.

    Raises:
        ConfigError: a bad spec (naming ``generate.baselines.<model>.<key>``).
        MissingAssetError: the local ``pretrained`` folder is missing (rule ``fetch_baseline_model``).
    """
    baseline = BaselineModel.from_dict(model, spec)
    return generate_run(DiffusersRun.for_baseline(baseline, int(seed)), prompt_files, out_dirs, threads=threads)


def fetch_baseline_step(spec: Mapping[str, Any], model: str, out_dir: str | Path) -> Path:
    """Rule ``fetch_baseline_model``: download ``hub_id`` at ``revision`` into ``out_dir`` (the
    model's local ``pretrained`` folder). Files already there are kept.

    Raises:
        MissingAssetError: ``hub_id`` is empty (place the folder by hand), or the download fails
            (no network).
    """
    from tav_pipeline.backends.diffusers.families import fetch_pipeline

    baseline = BaselineModel.from_dict(model, spec)
    if not baseline.hub_id:
        raise MissingAssetError(
            out_dir,
            FETCH_BASELINE_RULE,
            f"generate.baselines.{model}.hub_id is empty: place the pipeline folder (save_pretrained layout) "
            "there by hand",
        )
    path = fetch_pipeline(baseline.hub_id, out_dir, revision=baseline.revision, rule=FETCH_BASELINE_RULE)
    if not (path / "model_index.json").is_file():
        raise MissingAssetError(
            path, FETCH_BASELINE_RULE, f"{baseline.hub_id}@{baseline.revision} holds no model_index.json"
        )
    return path
