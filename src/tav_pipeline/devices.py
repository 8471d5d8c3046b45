"""The torch device a setting names."""

from __future__ import annotations

from tav_pipeline.errors import ConfigError


def resolve_device(device: str, *, key: str = "device") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; any other value is checked as a
    torch device string and returned unchanged. torch is imported only when it must be.

    Raises:
        ConfigError: ``device`` is not a device string torch accepts (``key`` names the setting).
    """
    if device in ("cpu", "cuda"):
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(key, f"not a torch device: {device!r} ({exc})") from exc
    return device
