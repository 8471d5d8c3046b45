"""Rule ``generate_videos`` with ``train.backend: opensora``: the test prompts through
``opensora.sample.sample``, its videos mapped back to our prompt indices, and their manifests."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tav_pipeline.backends.opensora.checks import check_checkout, check_settings, check_weights
from tav_pipeline.backends.opensora.commands import checkout_env, executable, sample_argv
from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.generate import manifest_doc, read_prompts, write_doc
from tav_pipeline.train import checkpoint as ckpt
from tav_pipeline.train.config import GenerateConfig, TrainConfig


def write_prompt_file(prompts: Sequence[str], path: str | Path) -> Path:
    """One prompt per line, as ``--text_prompt FILE.txt`` reads them (no blank lines)."""
    for i, p in enumerate(prompts):
        if not p.strip() or "\n" in p:
            raise ConfigError("generate", f"prompt {i} is empty or spans lines: {p!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(p.strip() for p in prompts) + "\n")
    return Path(path)


def collect_samples(save_dir: str | Path, out_dir: str | Path, count: int, gen: GenerateConfig) -> list[Path]:
    """Move the sampler's ``{method}_{index}_gs{g}_s{steps}.mp4`` files to ``out_dir/{index}.mp4``.

    Raises:
        MissingAssetError: some prompt index has no video.
    """
    s = gen.opensora
    pattern = re.compile(rf"^{re.escape(s.sample_method)}_(\d+)_gs[^_]+_s{s.num_sampling_steps}\.mp4$")
    found: dict[int, Path] = {}
    for path in Path(save_dir).iterdir():
        m = pattern.match(path.name)
        if m:
            found[int(m.group(1))] = path
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise MissingAssetError(
            Path(save_dir) / f"{s.sample_method}_{missing[0]}_gs*_s{s.num_sampling_steps}.mp4",
            "generate_videos",
            f"Open-Sora-Plan's sampler wrote no video for prompt(s) {missing}",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.move(str(found[i]), str(out / f"{i}.mp4"))) for i in range(count)]


def sample_opensora_step(
    checkpoint_dir: str | Path | None,
    prompt_files: Mapping[str, str | Path],
    out_dirs: Mapping[str, str | Path],
    work_dir: str | Path,
    train: dict[str, Any],
    generate: dict[str, Any],
    checkpoint: str = "",
) -> dict[str, list[Path]]:
    """Rule ``generate_videos`` with ``train.backend: opensora``: every group's test prompts
    through ``opensora.sample.sample``.

    Arguments:
        checkpoint_dir: an epoch folder, or ``None`` for the baseline (``train.opensora.pretrained``).
        prompt_files: group -> ``results/prompts/{group}.txt``.
        out_dirs: group -> ``results/generated/{model}/{checkpoint}/{group}``.
        work_dir: scratch folder.
        train, generate: the config sections.
        checkpoint: the checkpoint's name for the manifest (``baseline``, ``epoch_16``).
    """
    from tav_pipeline.train.process import run_logged

    cfg = TrainConfig.from_dict(train)
    gen = GenerateConfig.from_dict(generate)
    repo = check_checkout(cfg)
    check_settings(cfg)
    check_weights(cfg)
    model_path = (
        Path(cfg.opensora.pretrained) if checkpoint_dir is None else ckpt.weights_dir(checkpoint_dir, gen.weights)
    )
    results: dict[str, list[Path]] = {}
    for group, prompt_path in prompt_files.items():
        prompts = read_prompts(prompt_path)
        work = Path(work_dir) / group
        shutil.rmtree(work, ignore_errors=True)
        prompt_file = write_prompt_file(prompts, work / "prompts.txt")
        argv = sample_argv(
            cfg, gen, model_path=model_path, prompt_file=prompt_file, save_dir=work / "samples", port=_port()
        )
        argv[0] = executable("torchrun")
        run_logged(argv, env=checkout_env(repo), cwd=repo)
        videos = collect_samples(work / "samples", out_dirs[group], len(prompts), gen)
        write_sample_manifest(
            out_dirs[group],
            cfg,
            gen,
            checkpoint=checkpoint or ("baseline" if checkpoint_dir is None else Path(checkpoint_dir).name),
            group=group,
            prompts=prompts,
        )
        results[group] = videos
    shutil.rmtree(work_dir, ignore_errors=True)
    return results


def _port() -> int:
    from tav_pipeline.train.accelerate_config import free_port

    return free_port()


# ----------------------------------------------------------------------------------------------


def write_sample_manifest(
    folder: str | Path, train: TrainConfig, gen: GenerateConfig, *, checkpoint: str, group: str, prompts: Sequence[str]
) -> Path:
    """``prompts.json`` of a group folder sampled by Open-Sora-Plan (which seeds itself: no seed
    per video)."""
    s = gen.opensora
    doc = manifest_doc(
        group=group,
        prompts=prompts,
        seeds=[None] * len(prompts),
        model=train.model,
        backend="opensora",
        checkpoint=checkpoint,
        weights="pretrained" if checkpoint == "baseline" else gen.weights,
        num_frames=train.num_frames,
        height=train.height,
        width=train.width,
        fps=train.fps,
        settings={
            "sample_method": s.sample_method,
            "num_sampling_steps": s.num_sampling_steps,
            "guidance_scale": s.guidance_scale,
            "seed": gen.seed,
        },
    )
    return write_doc(folder, doc)
