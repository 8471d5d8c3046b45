"""Test-prompt videos of the baseline and every post-trained checkpoint (paper sections 4-5).

``results/generated/{model}/{checkpoint}/{group}/{i}.mp4`` is the video of line ``i`` (0-based) of
``results/prompts/{group}.txt``; ``checkpoint`` is ``baseline`` or ``epoch_{N}``. Each group folder
also holds ``prompts.json``: ``{"group": ..., "prompts": [...]}`` (what the evaluation reads) plus
the seeds and settings of the videos.

The diffusers backend (this module) loads the pipeline, swaps in the checkpoint's transformer
(the EMA weights by default, as Open-Sora-Plan samples ``model_ema``), and calls the pipeline
class with a seeded CPU generator per video: video ``i`` of every group and checkpoint starts from
the same noise (seed ``generate.seed + i``), so checkpoints are compared on paired samples. The
Open-Sora-Plan backend runs that project's own sampler
(:func:`tav_pipeline.train.external.sample_opensora_step`).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tav_pipeline.errors import ConfigError
from tav_pipeline.train.config import GenerateConfig, TrainConfig

log = logging.getLogger(__name__)

MANIFEST = "prompts.json"


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line (a final newline is fine; a blank line is not: it would shift indices).

    Raises:
        ConfigError: a blank line, or no prompt at all.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise ConfigError("dataset.group_templates", f"{path} line {n} is blank")
    if not lines:
        raise ConfigError("dataset.group_templates", f"{path} holds no prompt")
    return [line.strip() for line in lines]


def write_manifest(
    folder: str | Path,
    train: TrainConfig,
    gen: GenerateConfig,
    *,
    checkpoint: str,
    group: str,
    prompts: Sequence[str],
    backend: str,
) -> Path:
    """``prompts.json`` of a group folder: ``group`` and ``prompts`` (index ``i`` -> ``{i}.mp4``),
    then how the videos were made."""
    if backend == "opensora":
        s: Any = gen.opensora
        seeds: list[int | None] = [None] * len(prompts)
        settings = {
            "sample_method": s.sample_method,
            "num_sampling_steps": s.num_sampling_steps,
            "guidance_scale": s.guidance_scale,
            "seed": gen.seed,
        }
    else:
        s = gen.diffusers
        seeds = [gen.seed + i for i in range(len(prompts))]
        settings = {
            "num_inference_steps": s.num_inference_steps,
            "guidance_scale": s.guidance_scale,
            "negative_prompt": s.negative_prompt,
            "use_dynamic_cfg": s.use_dynamic_cfg,
        }
    doc = {
        "group": group,
        "prompts": list(prompts),
        "seeds": seeds,
        "model": train.model,
        "backend": backend,
        "checkpoint": checkpoint,
        "weights": "pretrained" if checkpoint == "baseline" else gen.weights,
        "num_frames": train.num_frames,
        "height": train.height,
        "width": train.width,
        "fps": train.fps,
        "settings": settings,
    }
    path = Path(folder) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_pipeline(pretrained: str, checkpoint_dir: str | Path | None, train: TrainConfig, gen: GenerateConfig) -> Any:
    """The pipeline with the checkpoint's transformer (or the pretrained one for the baseline),
    on the configured device and dtype."""
    import torch

    from tav_pipeline.train.checkpoint import weights_dir
    from tav_pipeline.train.families import DTYPES, FAMILIES, _diffusers, model_index, resolve_device

    device = resolve_device(gen.diffusers.device)
    dtype_name = gen.diffusers.dtype
    dtype = (torch.bfloat16 if device.type == "cuda" else torch.float32) if dtype_name == "auto" else DTYPES[dtype_name]
    revision = train.diffusers.revision
    kwargs: dict[str, Any] = {"dtype": dtype, "revision": revision}
    if checkpoint_dir is not None:
        name = str(model_index(pretrained, revision).get("_class_name", ""))
        if name not in FAMILIES:
            raise ConfigError("train.diffusers.pretrained", f"{name} is not a supported pipeline {sorted(FAMILIES)}")
        family = FAMILIES[name]()
        kwargs[family.transformer_subfolder] = family.transformer_cls().from_pretrained(
            str(weights_dir(checkpoint_dir, gen.weights)), dtype=dtype
        )
    pipe = _diffusers().DiffusionPipeline.from_pretrained(pretrained, **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate_group(
    pipe: Any, prompts: Sequence[str], out_dir: str | Path, train: TrainConfig, gen: GenerateConfig
) -> list[Path]:
    """Generate ``{i}.mp4`` for every prompt, seed ``gen.seed + i``, at ``train.fps``."""
    import numpy as np
    import torch

    from tav_pipeline.video import encode_frames

    s = gen.diffusers
    accepted = set(inspect.signature(pipe.__call__).parameters)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, prompt in enumerate(tqdm(prompts, desc=f"generate {out.name}", unit="video")):
        call: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": s.negative_prompt or None,
            "num_frames": train.num_frames,
            "height": train.height,
            "width": train.width,
            "num_inference_steps": s.num_inference_steps,
            "guidance_scale": s.guidance_scale,
            "use_dynamic_cfg": s.use_dynamic_cfg,
            "generator": torch.Generator(device="cpu").manual_seed(gen.seed + i),
            "output_type": "np",
        }
        if "max_sequence_length" in accepted and train.diffusers.max_sequence_length:
            call["max_sequence_length"] = train.diffusers.max_sequence_length
        elif (
            "max_sequence_length" in accepted
            and hasattr(pipe, "transformer")
            and hasattr(pipe.transformer.config, "max_text_seq_length")
        ):
            call["max_sequence_length"] = int(pipe.transformer.config.max_text_seq_length)
        call = {k: v for k, v in call.items() if k in accepted}
        with torch.no_grad():
            frames = pipe(**call).frames[0]
        video = (np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        path = out / f"{i}.mp4"
        encode_frames(list(video), path, fps=float(train.fps))
        paths.append(path)
    return paths


def generate_videos_step(
    pretrained: str,
    checkpoint_dir: str | Path | None,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    train: dict[str, Any],
    generate: dict[str, Any],
    checkpoint: str = "",
    work_dir: str | Path | None = None,
    threads: int = 0,
) -> dict[str, list[Path]]:
    """Rule ``generate_videos``: every group's test prompts through the diffusers pipeline, or,
    with ``train.backend: opensora``, through Open-Sora-Plan's sampler
    (:func:`tav_pipeline.train.external.sample_opensora_step`).

    Arguments:
        pretrained: the pipeline folder or hub id (``train.diffusers.pretrained``).
        checkpoint_dir: an epoch folder, or ``None`` for the baseline.
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/{checkpoint}/{group}``.
        train, generate: the config sections.
        checkpoint: the checkpoint's name for the manifests.
        work_dir: scratch folder of the Open-Sora-Plan sampler.
        threads: torch CPU threads (0: torch's default).

    Returns:
        group -> the videos written.
    """
    train_cfg = TrainConfig.from_dict(train)
    gen = GenerateConfig.from_dict(generate)
    if train_cfg.backend == "opensora":
        from tav_pipeline.train.external import sample_opensora_step

        return sample_opensora_step(
            checkpoint_dir,
            prompt_files,
            out_dirs,
            work_dir or Path(next(iter(out_dirs.values()))).parent / ".work",
            train,
            generate,
            checkpoint,
        )
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    if set(prompt_files) != set(out_dirs):
        raise ConfigError(
            "generate.groups", f"prompt files {sorted(prompt_files)} and outputs {sorted(out_dirs)} differ"
        )
    name = checkpoint or ("baseline" if checkpoint_dir is None else Path(checkpoint_dir).name)
    pipe = load_pipeline(pretrained, checkpoint_dir, train_cfg, gen)
    log.info(
        "%s %s: %s on %s, %d steps, guidance %.2f",
        train_cfg.model,
        name,
        type(pipe).__name__,
        pipe.device,
        gen.diffusers.num_inference_steps,
        gen.diffusers.guidance_scale,
    )
    results = {}
    for group in prompt_files:
        prompts = read_prompts(prompt_files[group])
        results[group] = generate_group(pipe, prompts, out_dirs[group], train_cfg, gen)
        write_manifest(
            out_dirs[group], train_cfg, gen, checkpoint=name, group=group, prompts=prompts, backend="diffusers"
        )
        log.info("group %s: %d video(s) in %s", group, len(prompts), out_dirs[group])
    return results
