"""The tiny random BLIP: loads offline through the real classes, deterministic, image-dependent."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tav_pipeline.tiny_models import build_tiny_blip, tiny_vocab
from tav_pipeline.video import iter_frames

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
BlipForConditionalGeneration = transformers.BlipForConditionalGeneration
BlipProcessor = transformers.BlipProcessor

pytestmark = pytest.mark.models


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny") / "blip", seed=0)


@pytest.fixture(scope="module")
def lavfi_frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """Three different real decoded frames: testsrc2, SMPTE bars, a Mandelbrot set."""
    out = tmp_path_factory.mktemp("lavfi")
    frames = []
    for i, source in enumerate(("testsrc2=s=96x64:r=5:d=1", "smptebars=s=96x64:r=5:d=1", "mandelbrot=s=96x64:r=5")):
        path = out / f"{i}.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", "3",
             "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )
        frames.append(next(iter_frames(path, pixel_format="rgb24")).image)
    return frames


def _generate(folder: Path, images: list[np.ndarray]) -> list[list[int]]:
    processor = BlipProcessor.from_pretrained(folder, local_files_only=True)
    model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    inputs = processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(pixel_values=inputs["pixel_values"], num_beams=3, max_new_tokens=12, min_new_tokens=5, do_sample=False)
    return [row.tolist() for row in out]


def test_layout_and_size_like_a_real_checkpoint(tiny: Path) -> None:
    names = {p.name for p in tiny.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "vocab.txt"} <= names
    total = sum(p.stat().st_size for p in tiny.iterdir())
    assert total < 3 * 1024 * 1024


def test_loads_offline_with_the_real_classes(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor = BlipProcessor.from_pretrained(tiny, local_files_only=True)
    model = BlipForConditionalGeneration.from_pretrained(tiny, local_files_only=True)
    assert type(processor.image_processor).__name__ == "BlipImageProcessor"
    assert "Bert" in type(processor.tokenizer).__name__
    size = processor.image_processor.size
    assert (size["height"], size["width"]) == (64, 64) == (model.config.vision_config.image_size,) * 2
    vocab = tiny_vocab()
    assert model.config.text_config.vocab_size == len(vocab) == len(processor.tokenizer)
    assert 200 <= len(vocab) <= 1000
    # The decoder's start token is [DEC], as in Salesforce's checkpoints; [PAD] is 0.
    assert processor.tokenizer.convert_ids_to_tokens(model.config.text_config.bos_token_id) == "[DEC]"
    assert processor.tokenizer.pad_token_id == model.config.text_config.pad_token_id == 0
    ids = processor.tokenizer("A man sitting on a table").input_ids
    assert processor.tokenizer.unk_token_id not in ids
    assert processor.tokenizer.decode(ids, skip_special_tokens=True) == "a man sitting on a table"


def test_same_seed_same_files_other_seed_other_weights(tiny: Path, tmp_path: Path) -> None:
    again = build_tiny_blip(tmp_path / "again", seed=0)
    other = build_tiny_blip(tmp_path / "other", seed=1)
    assert _sha(again / "model.safetensors") == _sha(tiny / "model.safetensors")
    assert _sha(other / "model.safetensors") != _sha(tiny / "model.safetensors")


def test_build_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_blip(tmp_path / "m", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_captions_are_deterministic_and_depend_on_the_image(tiny: Path, tmp_path: Path, lavfi_frames: list[np.ndarray]) -> None:
    first = _generate(tiny, lavfi_frames)
    rebuilt = build_tiny_blip(tmp_path / "rebuilt", seed=0)
    assert _generate(rebuilt, lavfi_frames) == first
    # Different pictures give different token sequences (the vision tower is not a no-op).
    assert len({tuple(seq) for seq in first}) == len(lavfi_frames)


# ----------------------------------------------------------------------------------------------
# Tiny EasyAnimate (the baseline-only diffusers model of the demo and the generation tests)


@pytest.fixture(scope="module")
def tiny_easyanimate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    from tav_pipeline.tiny_easyanimate import build_tiny_easyanimate

    return build_tiny_easyanimate(tmp_path_factory.mktemp("tiny") / "easyanimate", seed=0)


def test_tiny_easyanimate_has_the_classes_of_the_real_checkpoint(tiny_easyanimate: Path) -> None:
    import json

    index = json.loads((tiny_easyanimate / "model_index.json").read_text())
    # alibaba-pai/EasyAnimateV5.1-7b-zh-diffusers: the pipeline's own type hints
    assert index["_class_name"] == "EasyAnimatePipeline"
    assert {k: v for k, v in index.items() if not k.startswith("_")} == {
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen2VLForConditionalGeneration"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"],
        "transformer": ["diffusers", "EasyAnimateTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLMagvit"],
    }
    total = sum(p.stat().st_size for p in tiny_easyanimate.rglob("*") if p.is_file())
    assert total < 3 * 1024 * 1024


def test_tiny_easyanimate_loads_offline_and_tokenises_words(
    tiny_easyanimate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import DiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = DiffusionPipeline.from_pretrained(str(tiny_easyanimate), local_files_only=True)
    assert type(pipe).__name__ == "EasyAnimatePipeline"
    tok = pipe.tokenizer
    assert pipe.text_encoder.config.text_config.vocab_size == len(tok)
    assert pipe.transformer.config.text_embed_dim == pipe.text_encoder.config.text_config.hidden_size
    text = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "Previous scene: a dog; Next scene: a cat"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    pieces = tok.tokenize(text)
    assert {"\u0120dog", "\u0120scene", "\u0120cat", "<|im_start|>", "<|im_end|>"} <= set(pieces)
    assert tok.decode(tok(text).input_ids) == text  # byte-level: any text round-trips
    assert tok.decode(tok("Überraschung 42!").input_ids) == "Überraschung 42!"
    # the temporal and spatial compression of the real VAE: 9 frames at 32x32 -> 3x4x4 latents
    assert (pipe.vae.temporal_compression_ratio, pipe.vae.spatial_compression_ratio) == (4, 8)


def test_tiny_easyanimate_is_deterministic_and_leaves_the_global_rng(
    tiny_easyanimate: Path, tmp_path: Path
) -> None:
    from tav_pipeline.tiny_easyanimate import build_tiny_easyanimate

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = build_tiny_easyanimate(tmp_path / "again", seed=0)
    assert torch.equal(torch.rand(3), expected)
    other = build_tiny_easyanimate(tmp_path / "other", seed=1)
    for part in ("transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        assert _sha(again / part) == _sha(tiny_easyanimate / part)
        assert _sha(other / part) != _sha(tiny_easyanimate / part)
    weights = sorted((tiny_easyanimate / "text_encoder").glob("*.safetensors"))
    assert weights and [_sha(p) for p in weights] == [_sha(again / "text_encoder" / p.name) for p in weights]
