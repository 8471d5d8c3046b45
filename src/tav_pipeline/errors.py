"""The project's one exception hierarchy.

Library code raises these; per-video workflow steps catch :class:`BadVideoError` and write its
``reason`` to the rejects table instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class TavError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(TavError):
    """A configuration value is missing, unknown or inconsistent."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key


class BadVideoError(TavError):
    """A video cannot be used. ``reason`` is a short machine-readable tag for the rejects table.

    Reasons used across the pipeline: ``missing_file``, ``unreadable``, ``no_video_stream``,
    ``zero_frames``, ``one_frame``, ``decode_error``, ``not_found_locally``, ``empty_file``,
    ``download_failed:<kind>``, ``no_cut``, ``cut_too_early``, ``window_too_short``, ``encode_failed``,
    ``below_threshold`` / ``cut_not_redetected`` (validation), ``scene_too_short`` (keyframes),
    ``not_mp4`` / ``no_fps`` (Open-Sora-Plan export).
    """

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        text = f"{path}: {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
        self.path = str(path)
        self.reason = reason
        self.detail = detail


class MissingAssetError(TavError):
    """A model or data file the run needs is not on disk, and nothing may download it here."""

    def __init__(self, path: str | Path, rule: str, hint: str = "") -> None:
        text = f"missing asset {path}; the rule that provides it is '{rule}'"
        if hint:
            text += f". {hint}"
        super().__init__(text)
        self.path = str(path)
        self.rule = rule


class GpuClaimError(TavError):
    """A job's GPUs cannot be given to it: more than the machine has, a bad setting, or CUDA was
    initialised before the claim."""


class MetadataError(TavError):
    """The source metadata (Panda-70M's CSV) is malformed. Names the file, and where known the row
    and column; ``row`` is the 1-based data row (the header is row 0)."""

    def __init__(self, path: str | Path, message: str, *, row: int | None = None, column: str | None = None,
                 video_id: str | None = None) -> None:
        where = str(path)
        if row is not None:
            where += f", row {row}"
            if video_id is not None:
                where += f" (videoID {video_id!r})"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.row = row
        self.column = column


class RecordError(TavError):
    """A file or table that an earlier step wrote (a JSON record, ``prompts.json``, the sample
    table, the caption records) is malformed or lacks an entry the step needs. Names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


class PromptFileError(RecordError):
    """A prompt file (one prompt per line) cannot be used: a blank line, which would shift every
    later video's index, or no prompt at all."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"prompt file {path}", message)
        self.path = str(path)


class TrainingError(TavError):
    """A training run went wrong while it ran: a loss that is not finite, or a data stream that
    ended before the planned last step."""


class LaunchError(TavError):
    """An external command (trainer, sampler, git) failed; the message ends with its last lines."""

    def __init__(self, argv: Sequence[str], returncode: int, tail: str) -> None:
        super().__init__(f"{argv[0]} ... exited with {returncode}:\n{tail}")
        self.argv = list(argv)
        self.returncode = returncode
