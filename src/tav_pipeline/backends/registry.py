"""The names of the model backends: the subpackages of :mod:`tav_pipeline.backends`. A leaf, so the
config classes can check ``train.backend`` without importing any backend."""

from __future__ import annotations

import importlib
import pkgutil


def names() -> list[str]:
    """Every backend of this package (its subpackages), sorted."""
    package = importlib.import_module(__package__ or "tav_pipeline.backends")  # its __path__ may be extended
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg)
