"""Tests for tav_pipeline.source: Panda-70M metadata, video keys, fetching and failure records.

Downloads run through the real yt-dlp against a throw-away HTTP server on 127.0.0.1 (and a
``file://`` URL), so nothing leaves the machine.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tav_pipeline.cuts import CutResult
from tav_pipeline.errors import BadVideoError, ConfigError, MetadataError, TavError
from tav_pipeline.source import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    periodic_suffix,
    read_metadata,
    timestamp_seconds,
    video_key,
)
from tav_pipeline.steps import collect_rejects
from tav_pipeline.video_fetch import (
    DEFAULT_YTDLP_FORMAT,
    FetchRecord,
    SourceConfig,
    classify_download_error,
    fetch_video,
    find_local,
    ytdlp_options,
)

COLUMNS = ["videoID", "url", "timestamp", "caption", "matching_score", "desirable_filtering",
           "shot_boundary_detection"]


def panda_row(video_id: str, clips: list[tuple[str, str]], captions: list[str], **over: str) -> dict[str, str]:
    """A row exactly as Panda-70M writes it: list cells are Python reprs."""
    row = {
        "videoID": video_id,
        "url": f"https://www.youtube.com/watch?v={video_id}",
        "timestamp": repr([list(c) for c in clips]),
        "caption": repr(captions),
        "matching_score": repr([0.451416015625 + 0.01 * i for i in range(len(clips))]),
        "desirable_filtering": repr(["desirable"] * len(clips)),
        "shot_boundary_detection": repr([[["0:00:00.000", "0:00:03.069"]] for _ in clips]),
    }
    row.update(over)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


GOOD_ROWS = [
    panda_row("-2yHu5qgTzM", [("0:01:20.880", "0:01:23.983"), ("0:02:31.151", "0:02:34.320"),
                              ("0:03:28.841", "0:03:33.680")],
              ["A neuron in a black background.", "A woman is standing and talking to the camera.",
               "There is a whiteboard with equations on it."]),
    panda_row("my video 01", [("0:00:05.000", "0:00:16.500")], ["A dog runs on a beach."]),
    panda_row("it's \"quoted\"", [("1:00:00.250", "1:00:10.000")], ["A car drives down a road."]),
    panda_row("a/b", [("0:00:00.000", "0:00:04.000"), ("0:00:04.000", "0:00:09.000")],
              ["A chef cuts onions.", "He stirs the soup."]),
    panda_row("NA", [("0:00:01.000", "0:00:02.000")], ["Text on a screen."]),
]


@pytest.fixture
def metadata_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "panda70m_validation.csv", GOOD_ROWS)


# ------------------------------------------------------------------------------------------
# Metadata


def test_timestamp_seconds() -> None:
    assert timestamp_seconds("0:01:20.880") == pytest.approx(80.88)
    assert timestamp_seconds("1:00:00.250") == pytest.approx(3600.25)
    assert timestamp_seconds(2.5) == 2.5
    for bad in ("1:2", "0:61:00.000", "abc", -1.0, True, None):
        with pytest.raises(ValueError):
            timestamp_seconds(bad)


def test_read_metadata_parses_panda_format(metadata_csv: Path) -> None:
    df = read_metadata(metadata_csv)
    assert list(df["videoID"]) == ["-2yHu5qgTzM", "my video 01", "it's \"quoted\"", "a/b", "NA"]
    first = df.iloc[0]
    assert first["timestamp"][0] == pytest.approx((80.88, 83.983))
    assert first["span_start"] == pytest.approx(80.88)
    assert first["span_end"] == pytest.approx(213.68)
    assert first["caption"][1] == "A woman is standing and talking to the camera."
    assert first["text"].startswith("A neuron in a black background. A woman is standing")
    assert first["matching_score"][0] == pytest.approx(0.451416015625)
    assert first["desirable_filtering"] == ["desirable"] * 3
    assert first["shot_boundary_detection"][0] == [pytest.approx((0.0, 3.069))]
    assert df.iloc[2]["span_start"] == pytest.approx(3600.25)
    assert df.iloc[4]["videoID"] == "NA"  # not turned into a missing value
    assert df["span_start"].dtype == float


def test_video_keys_are_safe_and_unique(metadata_csv: Path) -> None:
    df = read_metadata(metadata_csv)
    keys = list(df["video"])
    assert keys[0] == "-2yHu5qgTzM"  # a valid YouTube ID is kept as is
    assert keys[4] == "NA"
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert key and all(ch.isalnum() or ch in "_-" for ch in key), key
    assert keys[1].startswith("my_video_01-") and len(keys[1].split("-")[-1]) == 8
    # IDs that slug identically still get different keys
    assert video_key("a b") != video_key("a_b") == "a_b"
    assert video_key("a b") != video_key("a  b")
    assert video_key("a b") == video_key("a b")  # stable


PERIODIC_IDS = [
    "cam1_00000000000000000000",  # the ID that made Snakemake abort the DAG
    "0" * 20,
    "0" * 300,
    "x" + "ab" * 20,
    "clip_" + "a_" * 25,
    "v" + "abc" * 40,
]
NOT_PERIODIC_IDS = ["-2yHu5qgTzM", "cam1_0000000000000000000", "ab" * 19 + "a", "a" * 19, "abc" * 19 + "ab"]


def test_periodic_suffix_is_snakemakes_test() -> None:
    from snakemake.io import PeriodicityDetector

    detector = PeriodicityDetector()
    for value in PERIODIC_IDS + NOT_PERIODIC_IDS + ["a" * 100 + "b", "ba" * 60, "_" * 21]:
        assert (periodic_suffix(value) is None) == (detector.is_periodic(value) is None), value
    assert periodic_suffix("cam1_00000000000000000000") == "0"
    assert periodic_suffix("x" + "ab" * 20) == "ab"


def test_every_id_gets_a_wildcard_safe_key() -> None:
    from snakemake.io import PeriodicityDetector

    detector = PeriodicityDetector()
    rng = np.random.default_rng(0)
    alphabet = list("0a_-b/ .é")
    generated = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 120)))) for _ in range(300)]
    ids = PERIODIC_IDS + NOT_PERIODIC_IDS + generated + ["a" * 65, "a/b" * 30, "%" * 40]
    keys = {video_id: video_key(video_id) for video_id in ids}
    for video_id, key in keys.items():
        assert re.fullmatch(KEY_PATTERN, key), (video_id, key)
        assert len(key) <= MAX_KEY_LENGTH, (video_id, key)
        assert detector.is_periodic(key) is None, (video_id, key)
    assert len(set(keys.values())) == len(keys)  # distinct IDs, distinct keys
    for video_id in NOT_PERIODIC_IDS:
        assert keys[video_id] == video_id  # normal IDs are their own key
    odd = keys["cam1_00000000000000000000"]
    assert odd.startswith("cam1_00000000000000000000-") and len(odd.rsplit("-", 1)[1]) == 8  # readable + hash
    assert keys["0" * 300].startswith("0" * 40 + "-")
    long_id = "".join(f"{i:02d}" for i in range(32))  # 64 characters, not periodic
    assert video_key(long_id) == long_id and len(video_key(long_id + "x")) < 64  # longer IDs are shortened


def test_empty_url_is_allowed_but_cannot_download(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [GOOD_ROWS[0], {**GOOD_ROWS[1], "url": ""}]
    df = read_metadata(write_csv(tmp_path / "m.csv", rows))
    assert "1 videos have an empty url" in caplog.text
    rec = fetch_video(df.iloc[1], SourceConfig(), tmp_path / "dl", downloader=_never)
    assert (rec.status, rec.reason, rec.detail) == ("failed", "download_failed:other", "empty url")


def test_first_release_without_optional_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "old.csv", GOOD_ROWS[:2], COLUMNS[:5])
    df = read_metadata(path)
    assert len(df) == 2
    assert df.iloc[0]["desirable_filtering"] == [] and df.iloc[0]["shot_boundary_detection"] == []


@pytest.mark.parametrize(
    ("bad_row", "column", "needle"),
    [
        (panda_row("x1", [("0:00:0x.000", "0:00:05.000")], ["a"]), "timestamp", "not a timestamp"),
        (panda_row("x1", [("0:00:01.000", "0:00:05.000")], ["a"], caption="['unterminated"), "caption",
         "not a Python literal"),
        (panda_row("x1", [("0:00:01.000", "0:00:05.000")], ["a", "b"]), "caption", "2 entries for 1 clips"),
        (panda_row("x1", [("0:00:09.000", "0:00:05.000")], ["a"]), "timestamp", "ends before"),
        (panda_row("x1", [("0:00:01.000", "0:00:05.000")], ["a"], matching_score="['high']"),
         "matching_score", "numbers"),
        (panda_row("x1", [("0:00:01.000", "0:00:05.000")], ["a"], timestamp="__import__('os')"),
         "timestamp", "not a Python literal"),
    ],
)
def test_malformed_row_names_file_row_and_column(tmp_path: Path, bad_row: dict[str, str], column: str,
                                                 needle: str) -> None:
    path = write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0], GOOD_ROWS[1], bad_row])
    with pytest.raises(MetadataError) as info:
        read_metadata(path)
    err = info.value
    assert isinstance(err, TavError) and not isinstance(err, ConfigError)  # a data fault, not a config key
    assert (err.row, err.column) == (3, column)
    text = str(err)
    assert str(path) in text and "row 3" in text and f"'{column}'" in text and needle in text
    assert "'x1'" in text


def test_missing_column_and_duplicate_id(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nocap.csv", GOOD_ROWS, [c for c in COLUMNS if c != "caption"])
    with pytest.raises(MetadataError, match=r"missing column\(s\) \[.caption.\]"):
        read_metadata(path)
    dup = write_csv(tmp_path / "dup.csv", [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[0]])
    with pytest.raises(MetadataError, match="duplicate videoID, first seen in row 1") as info:
        read_metadata(dup)
    assert info.value.row == 3
    with pytest.raises(MetadataError, match="no such file"):
        read_metadata(tmp_path / "absent.csv")


def test_ragged_csv_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    good = write_csv(tmp_path / "good.csv", GOOD_ROWS[:1]).read_text(encoding="utf-8")
    path.write_text(good + "abc,u,[],[],[],[],[],extra\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="cannot read as CSV: 8 fields, the header has 7") as info:
        read_metadata(path)
    assert info.value.row == 2


# ------------------------------------------------------------------------------------------
# Config


def test_source_config() -> None:
    cfg = SourceConfig.from_dict({"video_dir": "/v", "span": "full", "retries": 0})
    assert (cfg.video_dir, cfg.span, cfg.retries, cfg.pad_seconds) == ("/v", "full", 0, 5.0)
    assert SourceConfig().ytdlp_format == DEFAULT_YTDLP_FORMAT
    assert "[height>=360][ext=mp4]" in DEFAULT_YTDLP_FORMAT
    for bad in ({"nope": 1}, {"span": "clips"}, {"download": "yes"}, {"retries": -1}, {"pad_seconds": -2}):
        with pytest.raises(ConfigError):
            SourceConfig.from_dict(bad)


def test_ytdlp_options(tmp_path: Path) -> None:
    cfg = SourceConfig()
    opts = ytdlp_options(cfg, tmp_path / "100%", "vid", (10.0, 30.0))
    assert opts["outtmpl"]["default"] == f"{tmp_path}/100%%/vid.%(ext)s"
    assert opts["force_keyframes_at_cuts"] is True
    ranges = list(opts["download_ranges"]({}, None))
    assert ranges == [{"start_time": 10.0, "end_time": 30.0}]
    assert opts["format"] == cfg.ytdlp_format and opts["quiet"] is True
    assert "download_ranges" not in ytdlp_options(cfg, tmp_path, "vid", None)


# ------------------------------------------------------------------------------------------
# Error classification


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video. "
         "Use --cookies-from-browser or --cookies for the authentication.", "private"),
        ("ERROR: [youtube] abcdefghijk: Join this channel to get access to members-only content like this "
         "video, and other exclusive perks.", "private"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable", "removed"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader",
         "removed"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the "
         "YouTube account associated with this video has been terminated.", "removed"),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "forbidden_403"),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate for "
         "some users.", "forbidden_403"),
        ("ERROR: [youtube] abcdefghijk: Unable to download API page: HTTP Error 429: Too Many Requests "
         "(caused by <HTTPError 429: Too Many Requests>)", "rate_limited_429"),
        ("ERROR: [youtube] abcdefghijk: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser",
         "rate_limited_429"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. This content isn\u2019t available, try again later. "
         "The current session has been rate-limited by YouTube for up to an hour.", "rate_limited_429"),
        ("ERROR: [youtube] abcdefghijk: Video unavailable. The uploader has not made this video available "
         "in your country", "geo_blocked"),
        ("ERROR: [youtube] abcdefghijk: This video is not available from your location due to geo "
         "restriction", "geo_blocked"),
        ("ERROR: [youtube] abcdefghijk: Unable to download webpage: <urlopen error [Errno -3] Temporary "
         "failure in name resolution> (caused by TransportError(...))", "network"),
        ("ERROR: [youtube] abcdefghijk: Unable to download webpage: The read operation timed out", "network"),
        ("ERROR: abcdefghijk: Requested format is not available. Use --list-formats", "other"),
    ],
)
def test_classify_download_error(message: str, kind: str) -> None:
    assert classify_download_error(message) == kind


# ------------------------------------------------------------------------------------------
# Fetching


ROW = {"video": "vid01", "videoID": "vid01", "url": "https://www.youtube.com/watch?v=vid01",
       "span_start": 8.0, "span_end": 14.0}


def _never(url: str, params: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("the downloader must not be called")


def test_local_hit_never_downloads(tmp_path: Path) -> None:
    vdir = tmp_path / "videos"
    vdir.mkdir()
    (vdir / "vid01.webm").write_bytes(b"x")
    (vdir / "vid01.mkv").write_bytes(b"")  # empty files do not count
    cfg = SourceConfig(video_dir=str(vdir))
    rec = fetch_video(ROW, cfg, tmp_path / "dl", downloader=_never)
    assert (rec.status, rec.source, rec.path) == ("ok", "local", str(vdir / "vid01.webm"))
    # an ID that is not a file name is found under its key
    key = video_key("a/b")
    (vdir / f"{key}.mp4").write_bytes(b"x")
    assert find_local("a/b", key, vdir) == vdir / f"{key}.mp4"


def test_not_found_locally_when_download_is_off(tmp_path: Path) -> None:
    cfg = SourceConfig(video_dir=str(tmp_path), download=False)
    rec = fetch_video(ROW, cfg, tmp_path / "dl", downloader=_never)
    assert (rec.status, rec.reason, rec.path) == ("failed", "not_found_locally", "")
    assert str(tmp_path) in rec.detail


def test_empty_local_file_is_named_not_called_missing(tmp_path: Path) -> None:
    """A 0-byte file exists: the reason says it is empty (with downloads off), or it is replaced
    by a download (with downloads on)."""
    (tmp_path / "vid01.mp4").write_bytes(b"")
    off = fetch_video(ROW, SourceConfig(video_dir=str(tmp_path), download=False), tmp_path / "dl", downloader=_never)
    assert (off.status, off.reason, off.path) == ("failed", "empty_file", "")
    assert str(tmp_path / "vid01.mp4") in off.detail and "0 bytes" in off.detail

    def fake(url: str, params: dict[str, Any]) -> dict[str, Any]:
        target = Path(params["outtmpl"]["default"].replace("%(ext)s", "mp4"))
        target.write_bytes(b"video")
        return {"requested_downloads": [{"filepath": str(target)}]}

    on = fetch_video(ROW, SourceConfig(video_dir=str(tmp_path), span="full"), tmp_path / "dl", downloader=fake)
    assert (on.status, on.source) == ("ok", "download")


def test_injected_downloader_success_and_section(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(url: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.update(params)
        target = Path(params["outtmpl"]["default"].replace("%(ext)s", "mp4"))
        target.write_bytes(b"video")
        return {"id": "vid01"}

    cfg = SourceConfig(pad_seconds=5.0)
    rec = fetch_video(ROW, cfg, tmp_path / "dl", downloader=fake)
    assert rec.ok and rec.source == "download"
    assert rec.path == str(tmp_path / "dl" / "vid01.mp4")
    assert list(seen["download_ranges"]({}, None)) == [{"start_time": 3.0, "end_time": 19.0}]
    full = fetch_video(ROW, SourceConfig(span="full"), tmp_path / "dl2", downloader=fake)
    assert full.ok


def test_failure_is_recorded_not_raised(tmp_path: Path) -> None:
    import yt_dlp

    calls: list[str] = []

    def private(url: str, params: dict[str, Any]) -> dict[str, Any]:
        calls.append(url)
        Path(params["outtmpl"]["default"].replace("%(ext)s", "mp4.part")).write_bytes(b"half")
        raise yt_dlp.utils.DownloadError(
            "ERROR: [youtube] vid01: Private video. Sign in if you've been granted access to this video")

    cfg = SourceConfig(retries=3, rate_limit_sleep=0.0)
    rec = fetch_video(ROW, cfg, tmp_path / "dl", downloader=private)
    assert (rec.status, rec.reason, rec.source) == ("failed", "download_failed:private", "download")
    assert rec.detail.startswith("[youtube] vid01: Private video")
    assert len(calls) == 1  # a private video is not retried
    assert not list((tmp_path / "dl").iterdir())  # the partial file was removed

    rec.write(tmp_path / "rec" / "vid01.json")
    again = FetchRecord.read(tmp_path / "rec" / "vid01.json")
    assert again == rec


def test_collect_rejects_writes_the_failures_table(tmp_path: Path) -> None:
    """The failures table lists each failed fetch once; its cut record makes it a fetch_video reject."""
    failed = FetchRecord(video="vid01", video_id="vid01", status="failed", reason="download_failed:private",
                         detail="Private video", source="download", url="https://youtu.be/vid01")
    ok = FetchRecord(video="v2", video_id="v2", status="ok", path="/x.mp4", source="local")
    failed.write(tmp_path / "videos" / "vid01.json")
    ok.write(tmp_path / "videos" / "v2.json")
    error = BadVideoError("vid01", failed.reason, failed.detail)
    CutResult.rejected("vid01", "", error).write(tmp_path / "cuts" / "vid01.json")
    fetched = [tmp_path / "videos" / "vid01.json", tmp_path / "videos" / "v2.json"]
    rejects = collect_rejects(fetched, [tmp_path / "cuts" / "vid01.json"], [], {}, tmp_path / "rejects.csv", tmp_path / "failures.csv")
    back = pd.read_csv(tmp_path / "failures.csv", keep_default_na=False)
    assert list(back.columns) == ["video", "video_id", "url", "reason", "detail"]
    assert back.to_dict("records") == [{"video": "vid01", "video_id": "vid01", "url": "https://youtu.be/vid01",
                                        "reason": "download_failed:private", "detail": "Private video"}]
    assert rejects[["video", "stage", "reason"]].values.tolist() == [["vid01", "fetch_video", "download_failed:private"]]
    collect_rejects(fetched[1:], [], [], {}, tmp_path / "r2.csv", tmp_path / "none.csv")
    assert (tmp_path / "none.csv").read_text().strip() == "video,video_id,url,reason,detail"


def test_unexpected_exception_is_recorded(tmp_path: Path) -> None:
    def broken(url: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("ffmpeg exited with code 1")

    rec = fetch_video(ROW, SourceConfig(retries=0), tmp_path, downloader=broken)
    assert rec.reason == "download_failed:other" and "ffmpeg exited" in rec.detail


def test_success_without_file_is_a_failure(tmp_path: Path) -> None:
    rec = fetch_video(ROW, SourceConfig(), tmp_path, downloader=lambda url, params: {})
    assert rec.status == "failed" and rec.reason == "download_failed:other"


# ------------------------------------------------------------------------------------------
# Real yt-dlp, offline: a local HTTP server and file:// URLs


FPS = 10
CUT_AT = 10.0  # red for 10 s, then blue for 10 s


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    folder = tmp_path_factory.mktemp("media")
    argv = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=red:s=64x48:r={FPS}:d={CUT_AT}",
        "-f", "lavfi", "-i", f"color=c=blue:s=64x48:r={FPS}:d={CUT_AT}",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-c:a", "aac", "-shortest",
        "-movflags", "+faststart", str(folder / "source.mp4"),
    ]
    subprocess.run(argv, check=True, capture_output=True)
    return folder


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: dict[str, int]

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_error(code)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # yt-dlp closes probe connections early; that is not an error here


@pytest.fixture(scope="module")
def server(media_dir: Path) -> Iterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"hits": hits})
    srv = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(media_dir)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


def _first_blue_time(path: str) -> tuple[float, float]:
    """Time of the first mostly-blue frame, and the file's last frame time."""
    from tav_pipeline.video import iter_frames

    first_blue, last = None, 0.0
    for frame in iter_frames(path, pixel_format="rgb24"):
        r, _, b = frame.image.reshape(-1, 3).mean(axis=0)
        if first_blue is None and b > 150 and r < 100:
            first_blue = frame.time
        last = frame.time
    assert first_blue is not None
    return first_blue, last


def test_ytdlp_section_download_over_http(tmp_path: Path, server: tuple[str, dict[str, int]]) -> None:
    base, _ = server
    row = {**ROW, "url": f"{base}/source.mp4"}  # clips annotated at 8-14 s of the source
    cfg = SourceConfig(pad_seconds=2.0, retries=0)
    rec = fetch_video(row, cfg, tmp_path / "dl", downloader=None)
    assert rec.ok, rec.detail
    assert rec.source == "download" and Path(rec.path).name == "vid01.mp4"
    first_blue, last = _first_blue_time(rec.path)
    # the cut at 10 s of the source lies 4 s into the 6-16 s section
    assert first_blue + 6.0 == pytest.approx(CUT_AT, abs=1.5 / FPS)
    assert last == pytest.approx(10.0 - 1.0 / FPS, abs=2.5 / FPS)
    assert not [p for p in (tmp_path / "dl").iterdir() if p.suffix in (".part", ".ytdl")]


def test_ytdlp_full_download_from_file_url(tmp_path: Path, media_dir: Path) -> None:
    row = {**ROW, "url": (media_dir / "source.mp4").as_uri()}
    rec = fetch_video(row, SourceConfig(span="full", retries=0), tmp_path / "dl")
    assert rec.ok, rec.detail
    first_blue, last = _first_blue_time(rec.path)
    assert first_blue == pytest.approx(CUT_AT, abs=1.5 / FPS)
    assert last == pytest.approx(20.0 - 1.0 / FPS, abs=1.5 / FPS)


@pytest.mark.parametrize(
    ("code", "reason", "attempts"),
    [(429, "download_failed:rate_limited_429", 3), (403, "download_failed:forbidden_403", 3),
     (404, "download_failed:removed", 1)],
)
def test_ytdlp_http_errors_are_classified_and_retried(
    tmp_path: Path, server: tuple[str, dict[str, int]], code: int, reason: str, attempts: int
) -> None:
    base, hits = server
    path = f"/status/{code}"
    before = hits.get(path, 0)
    slept: list[float] = []
    row = {**ROW, "url": f"{base}{path}"}
    cfg = SourceConfig(retries=2, rate_limit_sleep=1.5)
    rec = fetch_video(row, cfg, tmp_path / "dl", sleep=slept.append)
    assert rec.status == "failed" and rec.reason == reason, rec.detail
    assert f"HTTP Error {code}" in rec.detail
    assert hits[path] - before == attempts
    assert slept == [1.5, 3.0][: attempts - 1]
    out = tmp_path / "rec.json"
    rec.write(out)
    assert json.loads(out.read_text())["reason"] == reason


def test_unreachable_host_is_network(tmp_path: Path) -> None:
    # a port that was just free: nothing listens, the connection is refused at once
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    row = {**ROW, "url": f"http://127.0.0.1:{port}/watch.mp4"}
    rec = fetch_video(row, SourceConfig(retries=0), tmp_path)
    assert rec.reason == "download_failed:network", rec.detail


def test_failure_records_are_json_serialisable(tmp_path: Path) -> None:
    rec = FetchRecord(video="k", video_id="it's \"q\"", status="failed", reason="download_failed:other",
                      detail="é", url=str(np.str_("https://example.org/v")))
    rec.write(tmp_path / "r.json")
    assert FetchRecord.read(tmp_path / "r.json") == rec
