"""tav-pipeline: build the TAV dataset and reproduce the paper's post-training study.

Each stage of the workflow is one module: :mod:`.sample`, :mod:`.source`, :mod:`.cuts`,
:mod:`.transitions`, :mod:`.clips`, :mod:`.validation`, :mod:`.captions`, :mod:`.dataset`.
Decoding and ffmpeg calls live in :mod:`.video` alone.
"""

from tav_pipeline.errors import BadVideoError, ConfigError, MissingAssetError, TavError

__all__ = ["BadVideoError", "ConfigError", "MissingAssetError", "TavError", "__version__"]
__version__ = "0.1.0"
