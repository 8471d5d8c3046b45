"""Fetching the source videos the Panda-70M metadata points to (:mod:`tav_pipeline.source`).

A video is fetched from a local folder when it is there, else downloaded with yt-dlp (Python API,
no shell). A failed fetch never raises: it returns a :class:`FetchRecord` whose ``reason`` goes to
the failures table.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError
from tav_pipeline.source import video_key

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

LOCAL_EXTENSIONS: tuple[str, ...] = ("mp4", "mkv", "webm", "mov", "avi")
"""Extensions looked for in :attr:`SourceConfig.video_dir`, in this order."""

DEFAULT_YTDLP_FORMAT = (
    "wv*[height>=360][ext=mp4]+ba[ext=m4a]/w[height>=360][ext=mp4]/bv*[ext=mp4]+ba[ext=m4a]/b[ext=mp4]/b"
)
"""Panda-70M's rule (its video2dataset ``YtDlpDownloader`` with ``download_size: 360``): the
smallest mp4 at least 360 px high, then the best mp4, with m4a audio merged in (Panda-70M's
README says its clips keep audio). The trailing ``/b`` (any format) is ours, so a source without
any mp4 still downloads instead of failing."""

FAILURE_KINDS: tuple[str, ...] = (
    "private", "removed", "forbidden_403", "rate_limited_429", "geo_blocked", "network", "other"
)
RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limited_429", "network", "forbidden_403"})
"""Failures worth another attempt (after a backoff sleep). YouTube's 403s are often an expired
signed URL or a short IP block, so they are retried too."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SOCKET_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------------------
# Configuration and records



FETCH_ONLY = ("metadata_csv", "metadata_url", "retries", "rate_limit_sleep")
"""``source:`` keys that do not shape a fetched video: where the metadata is (it reaches the rule
as the sample) and how hard a download is retried."""


def video_settings(source: dict[str, Any]) -> dict[str, Any]:
    """``source:`` as the rule ``fetch_video`` takes it as params: what shapes a fetched video, so
    that changing the retry settings does not refetch (and then re-detect, re-cut and retrain)
    every video."""
    return {k: v for k, v in source.items() if k not in FETCH_ONLY}


@dataclass(frozen=True)
class SourceConfig:
    """Where source videos come from."""

    metadata_csv: str = "resources/panda70m_validation.csv"
    """Panda-70M metadata CSV."""
    video_dir: str = ""
    """Folder of already-downloaded videos named ``{videoID}.{ext}`` (or ``{video}.{ext}``), ext in
    :data:`LOCAL_EXTENSIONS`; ``""`` for none. A local hit never downloads."""
    download: bool = True
    """Download with yt-dlp when the video is not found locally."""
    span: Literal["annotated", "full"] = "annotated"
    """``annotated``: download only ``[span_start - pad_seconds, span_end + pad_seconds]`` (the
    annotated clips plus padding, so the 10 s window around a cut near a clip edge exists);
    ``full``: the whole source video."""
    pad_seconds: float = 5.0
    ytdlp_format: str = DEFAULT_YTDLP_FORMAT
    retries: int = 3
    """Further attempts after a retryable failure (see :data:`RETRYABLE_KINDS`)."""
    rate_limit_sleep: float = 10.0
    """Seconds to sleep before the first retry; doubled before each further retry."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SourceConfig:
        """Build from a config mapping.

        Arguments:
            data: keys are field names; missing keys keep their defaults.

        Returns:
            The config.

        Raises:
            ConfigError: unknown key, wrong type or out-of-range value.
        """
        data = dict(data or {})
        check_keys("source", data, cls)
        cfg = cls(**data)
        for key in ("metadata_csv", "video_dir", "ytdlp_format", "span"):
            if not isinstance(getattr(cfg, key), str):
                raise ConfigError(f"source.{key}", f"must be a string, got {getattr(cfg, key)!r}")
        if not isinstance(cfg.download, bool):
            raise ConfigError("source.download", f"must be true or false, got {cfg.download!r}")
        if cfg.span not in ("annotated", "full"):
            raise ConfigError("source.span", f"must be 'annotated' or 'full', got {cfg.span!r}")
        for key in ("pad_seconds", "rate_limit_sleep"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"source.{key}", f"must be a number >= 0, got {value!r}")
        if isinstance(cfg.retries, bool) or not isinstance(cfg.retries, int) or cfg.retries < 0:
            raise ConfigError("source.retries", f"must be an integer >= 0, got {cfg.retries!r}")
        if not cfg.ytdlp_format.strip():
            raise ConfigError("source.ytdlp_format", "must not be empty")
        return cfg


@dataclass
class FetchRecord:
    """The outcome of fetching one source video (one JSON file per video)."""

    video: str
    """Key from :func:`video_key`."""
    video_id: str
    status: Literal["ok", "failed"]
    reason: str = ""
    """``""`` when ok; ``not_found_locally``, ``empty_file`` (the local file is 0 bytes) or
    ``download_failed:<kind>`` (kind in :data:`FAILURE_KINDS`)."""
    detail: str = ""
    """Human-readable detail (yt-dlp's message for a failed download)."""
    path: str = ""
    """The video file to use (``""`` when failed)."""
    source: str = ""
    """``local`` or ``download``: where the file came from, or for a failure the route tried."""
    url: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        """Write as JSON.

        Arguments:
            path: destination file (parents are created).
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> FetchRecord:
        """Read a record written by :meth:`write`.

        Arguments:
            path: the JSON file.

        Returns:
            The record.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------------------------
# Error classification


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private", re.compile(r"private video|video is private|members[- ]only|join this channel", re.IGNORECASE)),
    ("geo_blocked", re.compile(
        r"not available in your country|not made this video available in your country|"
        r"not available from your location|geo[- ]?restrict|blocked it in your country", re.IGNORECASE)),
    ("rate_limited_429", re.compile(
        r"http error 429|too many requests|confirm you.?re not a bot|rate.?limit|"
        r"content isn.?t available, try again later", re.IGNORECASE)),
    ("removed", re.compile(
        r"video unavailable|video is unavailable|has been removed|no longer available|"
        r"account associated with this video has been terminated|copyright claim|"
        r"terms of service|this video does not exist|http error 404|http error 410", re.IGNORECASE)),
    ("forbidden_403", re.compile(
        r"http error 403|forbidden|confirm your age|age.?restricted|inappropriate for some users", re.IGNORECASE)),
    ("network", re.compile(
        r"timed out|timeout|temporary failure in name resolution|name or service not known|"
        r"failed to resolve|getaddrinfo|connection (?:refused|reset|aborted)|network is unreachable|"
        r"no route to host|remote end closed|incompleteread|incomplete data|unable to connect|"
        r"transporterror|\bssl\b|http error 5\d\d|urlopen error", re.IGNORECASE)),
)


def classify_download_error(message: str) -> str:
    """Classify a yt-dlp error message.

    Arguments:
        message: the text of yt-dlp's exception (e.g. ``"ERROR: [youtube] abc: Private video. ..."``).

    Returns:
        One of :data:`FAILURE_KINDS`. Checked in this order, first match wins: ``private``
        (private or members-only), ``geo_blocked``, ``rate_limited_429`` (429, YouTube's bot check
        and its "try again later" session limit), ``removed`` (unavailable, removed, terminated,
        404/410), ``forbidden_403`` (403, age gate), ``network`` (DNS, timeouts, resets, 5xx);
        else ``other``.
    """
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return kind
    return "other"


def _error_text(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    cause = getattr(exc, "exc_info", None)
    if cause and len(cause) > 1 and cause[1] is not None and str(cause[1]) not in text:
        text += f" ({_ANSI.sub('', str(cause[1])).strip()})"
    text = text.removeprefix("ERROR: ")
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# yt-dlp


Downloader = Callable[[str, dict[str, Any]], Mapping[str, Any] | None]
"""Downloads ``url`` with the given yt-dlp parameters and returns yt-dlp's info dict (or None);
raises on failure. :func:`ytdlp_download` is the real one; tests inject fakes."""


class _YtdlpLogger:
    """Routes yt-dlp's messages to this module's logger instead of the terminal."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        # The same message is raised as DownloadError and recorded by fetch_video.
        log.debug("yt-dlp: %s", msg)


def ytdlp_options(
    cfg: SourceConfig, out_dir: str | Path, video: str, section: tuple[float, float] | None
) -> dict[str, Any]:
    """yt-dlp parameters for one download.

    Arguments:
        cfg: source settings (format).
        out_dir: folder for the file, named ``{video}.{ext}``.
        video: the video key.
        section: ``(start, end)`` seconds to download (with keyframes forced at the cuts, so the
            file starts at ``start``), or None for the whole video.

    Returns:
        The parameter dict for ``yt_dlp.YoutubeDL``.
    """
    folder = str(Path(out_dir)).replace("%", "%%")
    opts: dict[str, Any] = {
        "format": cfg.ytdlp_format,
        "outtmpl": {"default": f"{folder}/{video}.%(ext)s"},
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "noplaylist": True,
        "overwrites": True,
        "continuedl": False,
        "ignoreerrors": False,
        "socket_timeout": _SOCKET_TIMEOUT_S,
        "logger": _YtdlpLogger(),
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if section is not None:
        from yt_dlp.utils import download_range_func

        opts["download_ranges"] = download_range_func(None, [(float(section[0]), float(section[1]))])
        opts["force_keyframes_at_cuts"] = True
    return opts


def ytdlp_download(url: str, params: dict[str, Any]) -> dict[str, Any]:
    """Download with the yt-dlp Python API.

    Arguments:
        url: video page or media URL. ``file:`` URLs are enabled for this call only.
        params: ``yt_dlp.YoutubeDL`` parameters (see :func:`ytdlp_options`).

    Returns:
        yt-dlp's sanitized info dict (has ``requested_downloads[*].filepath``).

    Raises:
        yt_dlp.utils.DownloadError: (or another exception) when the download fails.
    """
    import yt_dlp

    params = dict(params)
    if url.startswith("file:"):
        params["enable_file_urls"] = True
    with yt_dlp.YoutubeDL(params) as ydl:
        info = ydl.extract_info(url, download=True)
        return dict(ydl.sanitize_info(info) or {})


# --------------------------------------------------------------------------------------------
# Fetching


def find_local(video_id: str, video: str, video_dir: str | Path) -> Path | None:
    """Look for an already-downloaded video.

    Arguments:
        video_id: the videoID (tried first: ``{videoID}.{ext}``).
        video: its key (tried second, for IDs that are not valid file names).
        video_dir: the folder; ``""`` means none.

    Returns:
        The first existing non-empty file over :data:`LOCAL_EXTENSIONS`, or None.
    """
    if not str(video_dir):
        return None
    folder = Path(video_dir)
    names = [video_id] if video_id == video else [video_id, video]
    for name in names:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            continue
        for ext in LOCAL_EXTENSIONS:
            candidate = folder / f"{name}.{ext}"
            try:
                if candidate.is_file() and candidate.stat().st_size > 0:
                    return candidate
            except OSError:  # e.g. a name too long for the file system
                continue
    return None


def find_empty_local(video_id: str, video: str, video_dir: str | Path) -> Path | None:
    """The first 0-byte file :func:`find_local` passed over (same names and extensions), or None:
    a copy or download that never completed."""
    if not str(video_dir):
        return None
    for name in dict.fromkeys([video_id, video]):
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            continue
        for ext in LOCAL_EXTENSIONS:
            candidate = Path(video_dir) / f"{name}.{ext}"
            try:
                if candidate.is_file() and candidate.stat().st_size == 0:
                    return candidate
            except OSError:
                continue
    return None


_VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".3gp", ".ts"}


def _downloaded_file(info: Mapping[str, Any] | None, out_dir: Path, video: str) -> Path | None:
    for item in (info or {}).get("requested_downloads") or []:
        fp = item.get("filepath") if isinstance(item, Mapping) else None
        if fp and Path(fp).is_file():
            return Path(fp)
    for ext in sorted(_VIDEO_SUFFIXES):
        candidate = out_dir / f"{video}{ext}"
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def _remove_partials(out_dir: Path, video: str) -> None:
    """Delete yt-dlp's leftovers (``.part``, ``.ytdl``, per-format ``.fNNN.`` files) for one video."""
    if not out_dir.is_dir():
        return
    for p in out_dir.iterdir():
        name = p.name
        if not name.startswith(video + "."):
            continue
        rest = name[len(video) + 1:]
        leftover = name.endswith((".part", ".ytdl", ".temp")) or ".part-Frag" in name
        if leftover or re.match(r"^f[\w-]+\.", rest) or rest.startswith("temp."):
            p.unlink(missing_ok=True)


def _get(row: Mapping[str, Any] | pd.Series, key: str, default: Any = None) -> Any:
    try:
        value = row[key]
    except (KeyError, IndexError):
        return default
    return default if value is None else value


def fetch_video(
    row: Mapping[str, Any] | pd.Series,
    cfg: SourceConfig,
    out_dir: str | Path,
    downloader: Downloader | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchRecord:
    """Get one source video: from :attr:`SourceConfig.video_dir` if it is there, else download it.

    Never raises for an unavailable video: the failure is returned as a record.

    Arguments:
        row: a metadata or sample row with ``videoID``, ``url``, ``span_start``, ``span_end`` and
            optionally ``video`` (computed with :func:`video_key` when absent).
        cfg: source settings.
        out_dir: folder for downloads (file ``{video}.{ext}``).
        downloader: replaces :func:`ytdlp_download` (tests).
        sleep: replaces :func:`time.sleep` for the retry backoff (tests).

    Returns:
        The record.
    """
    video_id = str(_get(row, "videoID", ""))
    video = str(_get(row, "video", "") or video_key(video_id))
    url = str(_get(row, "url", ""))
    base: dict[str, Any] = {"video": video, "video_id": video_id, "url": url}

    local = find_local(video_id, video, cfg.video_dir)
    if local is not None:
        log.info("%s: using local file %s", video, local)
        return FetchRecord(**base, status="ok", path=str(local), source="local")
    empty = find_empty_local(video_id, video, cfg.video_dir)
    if empty is not None and not cfg.download:
        log.warning("%s: %s is empty (0 bytes) and downloads are off", video, empty)
        return FetchRecord(**base, status="failed", reason="empty_file", source="local",
                           detail=f"{empty} is 0 bytes (an interrupted copy or download?); replace it with the video, "
                                  "or delete it and set source.download: true")
    if empty is not None:
        log.warning("%s: %s is empty (0 bytes); downloading the video instead", video, empty)
    if not cfg.download:
        exts = ",".join(LOCAL_EXTENSIONS)
        where = f"no {video_id}.{{{exts}}} in {cfg.video_dir}" if cfg.video_dir else "no video_dir set"
        log.warning("%s: not found locally (%s) and downloads are off", video, where)
        return FetchRecord(**base, status="failed", reason="not_found_locally",
                           detail=f"{where}; download is off", source="local")
    if not url:
        return FetchRecord(**base, status="failed", reason="download_failed:other", detail="empty url",
                           source="download")

    section: tuple[float, float] | None = None
    if cfg.span == "annotated":
        start = float(_get(row, "span_start", 0.0))
        end = float(_get(row, "span_end", 0.0))
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            return FetchRecord(**base, status="failed", reason="download_failed:other",
                               detail=f"bad annotated span {start}..{end}", source="download")
        section = (max(0.0, start - cfg.pad_seconds), end + cfg.pad_seconds)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = ytdlp_options(cfg, out, video, section)
    download = downloader or ytdlp_download
    attempts = cfg.retries + 1
    kind, detail = "other", ""
    for attempt in range(attempts):
        try:
            info = download(url, params)
        except Exception as exc:  # a failed download is data, not a crash
            detail = _error_text(exc)
            kind = classify_download_error(detail)
            _remove_partials(out, video)
            if kind in RETRYABLE_KINDS and attempt + 1 < attempts:
                wait = cfg.rate_limit_sleep * (2 ** attempt)
                log.warning("%s: attempt %d/%d failed (%s); retrying in %.0f s", video, attempt + 1,
                            attempts, kind, wait)
                sleep(wait)
                continue
            break
        path = _downloaded_file(info, out, video)
        if path is None:
            kind, detail = "other", "the downloader reported success but wrote no video file"
            break
        log.info("%s: downloaded %s%s", video, path,
                 f" (section {section[0]:.3f}-{section[1]:.3f} s)" if section else "")
        return FetchRecord(**base, status="ok", path=str(path), source="download")
    log.warning("%s: download failed (%s): %s", video, kind, detail[:300])
    return FetchRecord(**base, status="failed", reason=f"download_failed:{kind}", detail=detail[:1000],
                       source="download")
