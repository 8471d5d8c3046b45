"""STAND-IN FOR TESTS: not Open-Sora-Plan. What the stand-in trainer and sampler share: reading
and writing model folders (diffusers layout: ``config.json`` + ``diffusion_pytorch_model.safetensors``),
finding the VAE and the text encoder where Open-Sora-Plan v1.3.1 looks for them, and hashing.

numpy, safetensors and PyAV only (no torch), so a launch costs little more than its launcher.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CLASSES = {
    "OpenSoraT2V_v1_3-2B/122": "OpenSoraT2V_v1_3",
    "OpenSoraInpaint_v1_3-2B/122": "OpenSoraInpaint_v1_3",
}
"""``--model`` choices of v1.3.1 and the class each loads."""
AE_STRIDES = {
    "CausalVAEModel_D4_2x8x8": (2, 8, 8),
    "CausalVAEModel_D8_2x8x8": (2, 8, 8),
    "CausalVAEModel_D4_4x8x8": (4, 8, 8),
    "CausalVAEModel_D8_4x8x8": (4, 8, 8),
    "WFVAEModel_D8_4x8x8": (4, 8, 8),
    "WFVAEModel_D16_4x8x8": (4, 8, 8),
    "WFVAEModel_D32_4x8x8": (4, 8, 8),
    "WFVAEModel_D32_8x8x8": (8, 8, 8),
}
"""``--ae`` values v1.3.1 knows (any other is a ``KeyError`` there) and their strides."""
TEXT_ENCODERS = (
    "google/mt5-xl",
    "google/mt5-xxl",
    "google/umt5-xl",
    "google/umt5-xxl",
    "google/t5-v1_1-xl",
    "DeepFloyd/t5-v1_1-xxl",
    "openai/clip-vit-large-patch14",
    "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
)
"""Encoders v1.3.1's trainer finds by substring of ``--text_encoder_name_1`` (none: it asserts)."""


def load_model(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``config.json`` and the weights of a model folder, as ``from_pretrained`` would need them.

    Raises:
        OSError: the folder has no config or no weights file (diffusers says the same).
    """
    root = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (root / name).is_file():
            raise OSError(f"Error no file named {name} found in directory {root}.")
    config = json.loads((root / CONFIG_NAME).read_text())
    return config, load_file(str(root / WEIGHTS_NAME))


def save_model(folder: str | os.PathLike[str], config: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """Write a model folder as ``save_pretrained`` does: weights first, then the config."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(root / WEIGHTS_NAME), metadata={"format": "pt"})
    (root / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def check_vae(ae: str, ae_path: str) -> tuple[int, int, int]:
    """The VAE folder as ``ae_wrapper[ae](ae_path)`` loads it: ``config.json`` and either a ``*.ckpt``
    (read with ``init_from_ckpt``) or diffusers weights. Returns the VAE's strides.

    Raises:
        KeyError: ``ae`` is not a VAE v1.3.1 knows.
        OSError: the folder lacks the config or the weights.
    """
    if ae not in AE_STRIDES:
        raise KeyError(ae)
    root = Path(ae_path)
    if not (root / CONFIG_NAME).is_file():
        raise OSError(f"Error no file named {CONFIG_NAME} found in directory {root}.")
    if not any(root.glob("*.ckpt")) and not (root / WEIGHTS_NAME).is_file():
        raise OSError(f"Error no file named {WEIGHTS_NAME} found in directory {root}.")
    return AE_STRIDES[ae]


def resolve_pretrained(name: str, cache_dir: str) -> Path:
    """Where ``from_pretrained(name, cache_dir=cache_dir)`` finds a model offline: ``name`` itself
    when it is a folder, else the hub cache's snapshot that ``refs/main`` names.

    Raises:
        OSError: neither exists (what the hub client says offline).
    """
    if Path(name).is_dir():
        return Path(name)
    repo = Path(cache_dir) / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if (snapshot / CONFIG_NAME).is_file():
            return snapshot
    raise OSError(
        f"We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached "
        f"files at {repo}. Check your internet connection or see how to run the library in offline mode."
    )


def text_encoder(name: str, cache_dir: str) -> Path:
    """The text encoder's folder; ``name`` must contain one of :data:`TEXT_ENCODERS`."""
    if not any(key in name for key in TEXT_ENCODERS):
        raise AssertionError(f"no text encoder matches {name!r}")
    return resolve_pretrained(name, cache_dir)


def digest(*parts: bytes | str | int | float) -> bytes:
    """SHA-256 over ``parts`` (strings and numbers by their ``repr``)."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def weights_digest(tensors: dict[str, np.ndarray]) -> bytes:
    """A digest of a model's weights (names, shapes and values)."""
    return digest(*[x for k in sorted(tensors) for x in (k, str(tensors[k].shape), tensors[k].tobytes())])


def dist_env() -> tuple[int, int]:
    """``(rank, world_size)`` as the launchers (accelerate, torchrun) set them."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
