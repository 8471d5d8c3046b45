"""Where torch work runs: the one reading of a ``device`` setting (``auto``, ``cpu``, ``cuda``,
``cuda:N``) for every stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tav_pipeline.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str, key: str = "device") -> torch.device:
    """The torch device of a ``device`` setting: ``auto`` is CUDA when torch sees a GPU, else the
    CPU; any other value is passed to ``torch.device``.

    Arguments:
        device: the setting.
        key: its config key, for the error.

    Raises:
        ConfigError: naming ``key``, for a value torch does not know.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(key, f"unknown device {device!r}: {exc}") from exc
