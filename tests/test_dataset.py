"""tav.json: prompts in the paper's formats, the split, and the Open-Sora-Plan export."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tav_pipeline.dataset import (
    PAPER_GROUP_TEMPLATES,
    DatasetConfig,
    SplitConfig,
    assign_splits,
    build_tav,
    clean_caption,
    export_opensora,
    format_prompt,
    group_prompts,
    lower_first,
    split_counts,
    write_prompts,
)
from tav_pipeline.errors import BadVideoError, ConfigError, TavError

PAPER = Path("/work/shared/paper")
if not PAPER.is_dir():
    PAPER = Path(__file__).resolve().parents[1] / "shared" / "paper"


def _paper_pairs() -> list[dict[str, str]]:
    path = PAPER / "paper_prompt_pairs.csv"
    if not path.is_file():
        pytest.skip("paper prompt files not available")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _paper_lines(group: str) -> list[str]:
    return (PAPER / f"paper_prompts_{group}.txt").read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------------------------- prompts


def test_row_one_gives_line_one_of_each_group_exactly() -> None:
    row = _paper_pairs()[0]
    prompts = group_prompts(row["scene1"], row["scene2"])
    assert prompts["A"] == "A man and a woman sitting at a table on the beach."
    assert prompts["B"] == "A man and a woman sitting at a table on the beach; a woman sitting at a table with a drink."
    assert prompts["C"] == "Previous scene: a man and a woman sitting at a table on the beach; Next scene: a woman sitting at a table with a drink"
    for group in "ABC":
        assert prompts[group] == _paper_lines(group)[0]


@pytest.mark.parametrize("group", ["A", "B", "C"])
def test_every_printed_pair_reproduces_the_printed_prompt(group: str) -> None:
    pairs = _paper_pairs()
    lines = _paper_lines(group)
    assert len(lines) == len(pairs)
    made = [group_prompts(p["scene1"], p["scene2"])[group] for p in pairs]
    assert made == lines


def test_raw_blip_style_captions_give_the_same_prompts() -> None:
    # BLIP writes lower-case captions without a final period; the paper capitalises A and B.
    raw = group_prompts("a tall tower with a clock on top ", "a man putting his ballot into a ballot box.")
    assert raw["A"] == "A tall tower with a clock on top."
    assert raw["B"] == "A tall tower with a clock on top; a man putting his ballot into a ballot box."
    assert raw["C"] == "Previous scene: a tall tower with a clock on top; Next scene: a man putting his ballot into a ballot box"


def test_caption_cleaning_and_casing() -> None:
    assert clean_caption("  a  dog\n running .") == "a dog running"
    assert lower_first("TV screen with news") == "TV screen with news"
    assert lower_first("A flooded street in Phoenix, Arizona") == "a flooded street in Phoenix, Arizona"
    assert format_prompt("{Scene2}!", "x", "two cats") == "Two cats!"


def test_dataset_config_from_dict() -> None:
    cfg = DatasetConfig.from_dict(
        {
            "prompt_template": "Previous scene: {scene1}; Next scene: {scene2}",
            "group_templates": {"B": "{Scene1}, then {scene2}."},
            "split": {"policy": "ratio", "train": 480, "val": 50, "test": 50, "seed": 7},
        }
    )
    assert cfg.group_templates["B"] == "{Scene1}, then {scene2}."
    assert cfg.group_templates["A"] == PAPER_GROUP_TEMPLATES["A"]
    assert cfg.split == SplitConfig(policy="ratio", seed=7)
    with pytest.raises(ConfigError):
        DatasetConfig.from_dict({"templates": {}})
    with pytest.raises(ConfigError, match="dataset.opensora"):  # train: holds the frames, size and fps
        DatasetConfig.from_dict({"opensora": {"num_frames": 33}})
    with pytest.raises(ConfigError):
        DatasetConfig.from_dict({"group_templates": {"D": "{scene1}"}})
    with pytest.raises(ConfigError):
        DatasetConfig.from_dict({"prompt_template": "{scene3}"})
    with pytest.raises(ConfigError):
        DatasetConfig.from_dict({"split": {"policy": "random"}})
    with pytest.raises(ConfigError):
        DatasetConfig.from_dict({"split": {"ratio": 0.5}})


# ---------------------------------------------------------------------------------------------- split


def test_eval_first_counts() -> None:
    cfg = SplitConfig()
    assert split_counts(450, cfg) == ({"train": 350, "val": 50, "test": 50}, False)
    assert split_counts(500, cfg) == ({"train": 400, "val": 50, "test": 50}, False)
    assert split_counts(2000, cfg) == ({"train": 480, "val": 50, "test": 50}, False)
    counts, shrunk = split_counts(10, cfg)
    assert shrunk and counts == {"train": 8, "val": 1, "test": 1}


def test_ratio_counts() -> None:
    cfg = SplitConfig(policy="ratio")
    for n in (10, 99, 450, 580, 2000):
        counts, shrunk = split_counts(n, cfg)
        assert not shrunk and sum(counts.values()) == n
        assert abs(counts["test"] - n * 50 / 580) < 1 + 1e-9 and abs(counts["train"] - n * 480 / 580) < 1 + 1e-9
    assert split_counts(580, cfg)[0] == {"train": 480, "val": 50, "test": 50}


def test_assignment_is_deterministic_and_stable_when_a_video_is_added() -> None:
    videos = [f"vid{i:04d}" for i in range(450)]
    cfg = SplitConfig(seed=2025)
    first = assign_splits(videos, cfg)
    assert assign_splits(list(reversed(videos)), cfg) == first
    assert sum(1 for s in first.split_of.values() if s == "test") == 50
    other_seed = assign_splits(videos, SplitConfig(seed=1))
    assert other_seed.split_of != first.split_of
    grown = assign_splits([*videos, "vid_new"], cfg)
    moved = [v for v in videos if grown.split_of.get(v) != first.split_of.get(v)]
    # Only videos at a split boundary can move (test|val, val|train).
    assert len(moved) <= 2


def test_eval_first_leaves_extra_clips_unused() -> None:
    videos = [f"v{i}" for i in range(700)]
    result = assign_splits(videos, SplitConfig())
    assert result.counts == {"train": 480, "val": 50, "test": 50}
    assert len(result.unused) == 120 and set(result.unused).isdisjoint(result.split_of)


def test_too_few_clips_shrinks_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tav_pipeline.dataset"):
        result = assign_splits([f"v{i}" for i in range(10)], SplitConfig())
    assert result.shrunk and result.counts == {"train": 8, "val": 1, "test": 1}
    assert any("proportion" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- tav.json


def _records(n: int, root: Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    sidecars, checks, caps = [], [], []
    for i in range(n):
        video = f"v{i:02d}"
        clip = str((root or Path("results/clips")) / f"{video}.mp4")
        sidecars.append({"video": video, "source": f"{video}.src.mp4", "clip": clip, "status": "ok", "start": 0.0, "end": 10.0,
                         "duration": 10.0, "fps": 24.0, "frames": 240, "cut_time": 5.0, "cut_time_in_clip": 5.0,
                         "cut_frame_in_clip": 120, "policy": "paper", "shortfall_before": 0.0, "shortfall_after": 0.0})
        checks.append({"video": video, "clip": clip, "mode": "paper", "passed": True, "max_diff": 80.0, "max_diff_frame": 120,
                       "threshold": 50.0, "reason": ""})
        caps.append({"video": video, "scene": 1, "keyframe": "k1.png", "caption": f"a dog number {i} on the beach", "model": "blip@abc"})
        caps.append({"video": video, "scene": 2, "keyframe": "k2.png", "caption": f"a cat number {i} in a kitchen", "model": "blip@abc"})
    return sidecars, checks, caps


def test_build_tav_joins_filters_and_writes(tmp_path: Path) -> None:
    sidecars, checks, caps = _records(14)
    checks[0]["passed"] = False                       # v00 failed validation
    checks = [c for c in checks if c["video"] != "v01"]  # v01 never validated
    caps = [c for c in caps if not (c["video"] == "v02" and c["scene"] == 2)]  # v02 lacks scene 2
    next(c for c in caps if c["video"] == "v03" and c["scene"] == 1)["caption"] = " . "  # v03 empty caption
    next(c for c in checks if c["video"] == "v04")["clip"] = "results/clips/old_v04.mp4"  # record of another file
    captions_path = tmp_path / "captions.jsonl"
    captions_path.write_text("".join(json.dumps(c) + "\n" for c in caps))
    sidecar_paths = []
    for s in sidecars:
        p = tmp_path / "clips" / f"{s['video']}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(s))
        sidecar_paths.append(p)

    tav = build_tav(sidecar_paths, checks, captions_path, DatasetConfig(), out_json=tmp_path / "tav.json", prompts_dir=tmp_path / "prompts")

    assert tav["meta"]["dropped"] == {"validation_failed": ["v00"], "no_validation": ["v01"], "no_caption": ["v02"],
                                      "empty_caption": ["v03"], "validation_stale": ["v04"]}
    items = tav["items"]
    assert [it["video"] for it in items] == [f"v{i:02d}" for i in range(5, 14)]
    assert tav["meta"]["n_items"] == 9 and tav["meta"]["caption_model"] == "blip@abc"
    assert tav["meta"]["split"]["counts"] == {"train": 7, "val": 1, "test": 1} and tav["meta"]["split"]["shrunk"]
    first = items[0]
    assert set(first) == {"video", "clip", "scene1", "scene2", "prompt", "split", "duration", "fps", "frames", "cut_time_in_clip"}
    assert first["prompt"] == "Previous scene: a dog number 5 on the beach; Next scene: a cat number 5 in a kitchen"
    test_items = [it for it in items if it["split"] == "test"]
    assert tav["test_prompts"]["A"] == [f"{it['scene1'][0].upper()}{it['scene1'][1:]}." for it in test_items]
    assert tav["test_prompts"]["C"] == [it["prompt"] for it in test_items]
    assert json.loads((tmp_path / "tav.json").read_text()) == tav
    for group in "ABC":
        assert (tmp_path / "prompts" / f"{group}.txt").read_text().splitlines() == tav["test_prompts"][group]


def test_build_tav_is_deterministic_and_order_free() -> None:
    sidecars, checks, caps = _records(30)
    one = build_tav(sidecars, checks, caps, DatasetConfig())
    two = build_tav(list(reversed(sidecars)), list(reversed(checks)), list(reversed(caps)), DatasetConfig())
    assert one == two
    ratio = build_tav(sidecars, checks, caps, DatasetConfig(split=SplitConfig(policy="ratio")))
    # 30 x (480, 50, 50) / 580 = (24.8, 2.6, 2.6): largest remainders go to train, then test.
    assert ratio["meta"]["split"]["counts"] == {"train": 25, "val": 2, "test": 3}
    assert not ratio["meta"]["split"]["shrunk"]


def test_build_tav_refuses_mixed_models_and_duplicates() -> None:
    sidecars, checks, caps = _records(3)
    caps[0]["model"] = "other@1"
    with pytest.raises(TavError):
        build_tav(sidecars, checks, caps, DatasetConfig())
    sidecars, checks, caps = _records(3)
    with pytest.raises(TavError):
        build_tav([*sidecars, sidecars[0]], checks, caps, DatasetConfig())
    with pytest.raises(TavError):
        build_tav(sidecars, checks, [*caps, caps[0]], DatasetConfig())


def test_write_prompts_one_per_line(tmp_path: Path) -> None:
    tav = {"test_prompts": {"A": ["One.", "Two."], "B": [], "C": ["x"]}}
    paths = write_prompts(tav, tmp_path)
    assert paths["A"].read_text() == "One.\nTwo.\n" and paths["B"].read_text() == ""


# ---------------------------------------------------------------------------------------------- Open-Sora-Plan export


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five tiny real clips: 96x64 at 10 fps; v00-v03 last 5 s, v04 lasts 3 s."""
    out = tmp_path_factory.mktemp("clips")
    for i in range(5):
        seconds = 3 if i == 4 else 5
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=96x64:r=10:d={seconds}",
             "-pix_fmt", "yuv420p", str(out / f"v{i:02d}.mp4")],
            check=True,
        )
    return out


def _tav_for(clip_dir: Path, n: int = 5) -> dict[str, Any]:
    sidecars, checks, caps = _records(n, root=clip_dir)
    for s in sidecars:
        s["fps"], s["frames"] = 10.0, 30 if s["video"] == "v04" else 50
    return build_tav(sidecars, checks, caps, DatasetConfig(split=SplitConfig(policy="ratio", train=1, val=0, test=0)))


def test_export_opensora_format(clip_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tav = _tav_for(clip_dir)
    tav_path = tmp_path / "tav.json"
    tav_path.write_text(json.dumps(tav))
    with caplog.at_level(logging.WARNING, logger="tav_pipeline.dataset"):
        data_txt = export_opensora(tav_path, tmp_path / "osp", split="train")
    assert data_txt == (tmp_path / "osp" / "data.txt").resolve()
    lines = data_txt.read_text().splitlines()
    assert len(lines) == 1
    root, annotation = lines[0].split(",")
    assert Path(root) == clip_dir.resolve() and Path(annotation) == (tmp_path / "osp" / "tav_train.json").resolve()
    entries = json.loads(Path(annotation).read_text())
    by_path = {e["path"]: e for e in entries}
    assert sorted(by_path) == [f"v{i:02d}.mp4" for i in range(5)]
    for e in entries:
        assert e["path"].endswith(".mp4") and not Path(e["path"]).is_absolute() and (Path(root) / e["path"]).is_file()
        assert e["resolution"] == {"height": 64, "width": 96}
        assert e["fps"] == 10.0 and e["crop"] == [0, 96, 0, 64]
        assert e["cap"].startswith("Previous scene: a dog number")
    assert by_path["v00.mp4"]["num_frames"] == 50 and by_path["v04.mp4"]["num_frames"] == 30
    item = next(it for it in tav["items"] if it["video"] == "v02")
    assert by_path["v02.mp4"]["cap"] == item["prompt"]
    # the files hold no training setting: which clips the trainer drops is planned before launching
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_export_opensora_validates_paths(clip_dir: Path, tmp_path: Path) -> None:
    tav = _tav_for(clip_dir)
    with pytest.raises(TavError):
        export_opensora(tav, tmp_path / "osp", split="test")
    missing = json.loads(json.dumps(tav))
    missing["items"][0]["clip"] = str(clip_dir / "gone.mp4")
    with pytest.raises(BadVideoError) as err:
        export_opensora(missing, tmp_path / "osp")
    assert err.value.reason == "missing_file"
    not_mp4 = json.loads(json.dumps(tav))
    not_mp4["items"][0]["clip"] = str(clip_dir / "v00.mkv")
    with pytest.raises(BadVideoError) as err:
        export_opensora(not_mp4, tmp_path / "osp")
    assert err.value.reason == "not_mp4"
    no_fps = json.loads(json.dumps(tav))
    no_fps["items"][0]["fps"] = 0
    # The container still knows the rate, so a missing sidecar fps is filled from it.
    export_opensora(no_fps, tmp_path / "osp2")
    assert all(e["fps"] == 10.0 for e in json.loads((tmp_path / "osp2" / "tav_train.json").read_text()))
