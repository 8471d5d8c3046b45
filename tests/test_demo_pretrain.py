"""The demo's base model: a short run of the rule pretrain_demo_cogvideox on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.mark.slow
def test_a_short_pretraining_rule_writes_a_loadable_cogvideox(tmp_path: Path) -> None:
    import torch
    from conftest import copy_workflow
    from diffusers import CogVideoXPipeline

    from tav_pipeline.demo.world import Scene

    work = copy_workflow(tmp_path / "wf")
    short = {"demo": {"pretrain": {"clips": 16, "vae_steps": 3, "transformer_steps": 3, "batch_size": 4, "held_out": 4}}}
    (work / "short.yaml").write_text(yaml.safe_dump(short))
    proc = subprocess.run(
        SNAKEMAKE + ["--configfile", "config.yaml", "short.yaml", "--cores", "2", "results/demo/tiny_cogvideox_world"],
        cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    folder = work / "results" / "demo" / "tiny_cogvideox_world"
    report = json.loads((folder / "pretrain.json").read_text())
    assert report["settings"]["transformer_steps"] == 3 and report["vae_psnr_db"] > 0
    pipe = CogVideoXPipeline.from_pretrained(str(folder))
    assert pipe.vae.config.scaling_factor != pytest.approx(1.15258426)  # set from the world's latents
    # the world's words are whole tokens of the tokenizer
    caption = Scene("red", "triangle", "white").caption
    assert len(pipe.tokenizer(caption).input_ids) == len(caption.split()) + 1
    video = pipe(Scene("red", "ball", "white").caption, num_frames=9, height=32, width=32, num_inference_steps=2, max_sequence_length=32,
                 output_type="pt", generator=torch.Generator().manual_seed(0)).frames
    assert tuple(video.shape) == (1, 9, 3, 32, 32)
