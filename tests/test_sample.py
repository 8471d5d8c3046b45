"""Tests for tav_pipeline.sample: keyword classification, Hamilton allocation, seeded sampling."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tav_pipeline.errors import ConfigError
from tav_pipeline.sample import (
    DEFAULT_CATEGORIES,
    DOMAINS,
    OTHER,
    SAMPLE_COLUMNS,
    TABLE_COLUMNS,
    KeywordClassifier,
    SampleConfig,
    allocate,
    categorize,
    read_sample,
    stratified_sample,
    write_sample,
)
from tav_pipeline.source import read_metadata, video_key

# One caption per domain; the counts give a population of 2000 with uneven strata, one stratum
# of a single video and one of three.
TEMPLATES: dict[str, tuple[str, int]] = {
    "animals": ("A brown dog chases two cats across the yard.", 310),
    "scenery": ("An aerial view of mountains and a lake at sunset.", 254),
    "food": ("A chef is cooking noodles in a kitchen.", 201),
    "sports": ("Players kick a soccer ball in a stadium.", 180),
    "activities": ("A woman is dancing on stage at a wedding party.", 149),
    "vehicles": ("A red car drives down a highway.", 123),
    "tutorials": ("A person explains how to use a laptop, with text on the screen.", 301),
    "news & TV": ("A news anchor is talking in a television studio.", 255),
    "gaming": ("A video game character runs through a level.", 3),
    OTHER: ("Something indistinct happens.", 223),
}
assert sum(n for _, n in TEMPLATES.values()) == 2000 - 1
TEMPLATES_SINGLE = ("gaming", "A gamer holds a controller.")  # one more gaming video: 4 in total


def population(n_extra_single: bool = True) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    i = 0
    for cat, (text, n) in TEMPLATES.items():
        for j in range(n):
            vid = f"v{i:05d}{cat[:2]}"
            rows.append({"video": video_key(vid), "videoID": vid, "url": f"https://youtu.be/{vid}",
                         "span_start": float(j % 7), "span_end": float(j % 7) + 11.0, "text": text,
                         "expected": cat})
            i += 1
    if n_extra_single:
        rows.append({"video": "single", "videoID": "single", "url": "u", "span_start": 0.0, "span_end": 9.0,
                     "text": TEMPLATES_SINGLE[1], "expected": TEMPLATES_SINGLE[0]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# Keyword classifier


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("A dog runs on the grass.", "animals"),
        ("Two DOGS and a puppy play.", "animals"),  # case-insensitive, plural
        ("A hotdog stand on a corner.", OTHER),  # whole words only: no 'dog' inside 'hotdog'
        ("The category of the catalog.", OTHER),  # no 'cat' inside 'category'
        ("A man is playing a video game.", "gaming"),  # 'video game' + 'game' outscore nothing else
        ("A football game in a stadium.", "sports"),  # football+stadium (2) beats game (1)
        ("A dog on the beach.", "animals"),  # 1-1 tie: animals is listed before scenery
        ("A boat on the sea.", "scenery"),  # 1-1 tie: scenery before vehicles
        ("A chef in a kitchen cooks pasta.", "food"),
        ("A woman explains how to   use the app on her smartphone.", "tutorials"),  # phrase across spaces
        ("A news anchor talks in a TV studio.", "news & TV"),
        ("A man with a helmet sits.", OTHER),
        ("", OTHER),
    ],
)
def test_keyword_classifier(text: str, category: str) -> None:
    assert KeywordClassifier(DEFAULT_CATEGORIES)(text) == category


def test_classifier_scores_and_custom_order() -> None:
    clf = KeywordClassifier({"b": ["beach"], "a": ["dog"]})
    assert clf.scores("A dog on a beach, dogs everywhere") == {"b": 1, "a": 2}
    assert clf("A dog on a beach") == "b"  # tie goes to the first listed


def test_default_lists() -> None:
    assert list(DEFAULT_CATEGORIES) == list(DOMAINS)
    for name, words in DEFAULT_CATEGORIES.items():
        assert 15 <= len(words) <= 40, name
        assert len(set(words)) == len(words) and all(w == w.lower().strip() for w in words), name


def test_sample_config() -> None:
    cfg = SampleConfig.from_dict({"size": 10, "seed": 3, "categories": {"Pets": ["Dog", "dog", " cat "]}})
    assert cfg.categories == {"Pets": ("dog", "cat")}
    assert cfg.order == ["Pets", OTHER]
    assert SampleConfig().size == 500 and SampleConfig().population == 2000
    for bad in ({"sizes": 1}, {"size": 0}, {"size": 2.5}, {"stratify_by": "keyword"},
                {"categories": {"other": ["x"]}}, {"categories": {"a": "dog"}}, {"categories": {"a": []}}):
        with pytest.raises(ConfigError):
            SampleConfig.from_dict(bad)


# ------------------------------------------------------------------------------------------
# Allocation and sampling


def test_allocate_is_hamilton() -> None:
    # quotas 3.75, 2.5, 1.25, 0.5 (size 8 of 32): floors 3,2,1,0 (6 seats), remainders .75 .5 .25 .5
    assert allocate({"a": 15, "b": 10, "c": 5, "d": 2}, 8) == {"a": 4, "b": 3, "c": 1, "d": 0}
    # equal remainders: the category listed first wins
    assert allocate({"x": 1, "y": 1, "z": 1}, 2) == {"x": 1, "y": 1, "z": 0}
    assert allocate({"x": 3, "y": 1}, 10) == {"x": 3, "y": 1}


def test_categories_of_population() -> None:
    df = population()
    cats = categorize(df, SampleConfig())
    assert (cats == df["expected"]).all()


@pytest.mark.parametrize("size", [1, 37, 500, 1999])
def test_sample_shares_match_population(size: int) -> None:
    df = population()
    sample = stratified_sample(df, SampleConfig(size=size, seed=7))
    assert len(sample) == size
    assert list(sample.columns) == list(SAMPLE_COLUMNS)
    assert sample["video"].is_unique
    pop_share = df["expected"].value_counts(normalize=True)
    sample_share = sample["category"].value_counts(normalize=True)
    for cat in SampleConfig().order:
        diff = abs(sample_share.get(cat, 0.0) - pop_share.get(cat, 0.0))
        assert diff <= 1.0 / size + 1e-12, (cat, diff)
    # every sampled row is a real population row with its own category
    merged = sample.merge(df, on="videoID", suffixes=("", "_pop"))
    assert len(merged) == size and (merged["category"] == merged["expected"]).all()
    assert (merged["span_start"] == merged["span_start_pop"]).all()


def test_tiny_strata_at_size_500() -> None:
    df = population()
    sample = stratified_sample(df, SampleConfig(size=500, seed=1))
    counts = sample["category"].value_counts()
    # gaming has 4 of 2000 videos: quota exactly 1.0
    assert counts["gaming"] == 1
    # quotas: floors fill 496 seats; the 4 left go to the remainders .75 (vehicles, news & TV,
    # other) and then to the first-listed of the two .5 remainders (animals before scenery)
    assert counts["animals"] == 78 and counts["scenery"] == 63
    assert counts["vehicles"] == 31 and counts["news & TV"] == 64 and counts[OTHER] == 56


def test_deterministic_under_seed_and_row_order() -> None:
    df = population()
    cfg = SampleConfig(size=500, seed=42)
    a = stratified_sample(df, cfg)
    b = stratified_sample(df.sample(frac=1.0, random_state=0).reset_index(drop=True), cfg)
    pd.testing.assert_frame_equal(a, b)
    c = stratified_sample(df, SampleConfig(size=500, seed=43))
    assert set(a["videoID"]) != set(c["videoID"])
    assert a["category"].value_counts().to_dict() == c["category"].value_counts().to_dict()


def test_size_at_least_population_takes_all(caplog: pytest.LogCaptureFixture) -> None:
    df = population().iloc[:50]
    with caplog.at_level(logging.WARNING, logger="tav_pipeline.sample"):
        sample = stratified_sample(df, SampleConfig(size=500))
    assert sorted(sample["videoID"]) == sorted(df["videoID"])
    assert "has 50 videos" in caplog.text and "taking them all" in caplog.text


def test_write_sample_files(tmp_path: Path) -> None:
    df = population()
    cfg = SampleConfig(size=500, seed=5)
    sample, table = write_sample(df, cfg, tmp_path / "s" / "sample.csv", tmp_path / "s" / "sample_categories.csv")
    back = read_sample(tmp_path / "s" / "sample.csv")
    assert list(back.columns) == list(SAMPLE_COLUMNS) and len(back) == 500
    assert back["span_end"].dtype == float
    assert back["videoID"].tolist() == sample["videoID"].tolist()
    tab = pd.read_csv(tmp_path / "s" / "sample_categories.csv", keep_default_na=False)
    assert list(tab.columns) == list(TABLE_COLUMNS)
    assert tab["category"].tolist() == cfg.order
    assert tab["population_count"].sum() == 2000 and tab["sample_count"].sum() == 500
    assert (tab["difference"].abs() <= 1 / 500 + 1e-9).all()
    row = tab.set_index("category").loc["animals"]
    assert row["population_count"] == 310 and row["population_share"] == pytest.approx(0.155)
    assert row["difference"] == pytest.approx(row["sample_share"] - row["population_share"], abs=1e-6)
    assert table["sample_count"].tolist() == tab["sample_count"].tolist()
    assert table["population_share"].tolist() == pytest.approx(tab["population_share"].tolist())


def test_end_to_end_from_panda_csv(tmp_path: Path) -> None:
    """Metadata read from a Panda-format CSV, including unsafe IDs, samples cleanly."""
    rows = [
        ("-2yHu5qgTzM", "[['0:01:20.880', '0:01:23.983']]", "['A neuron in a black background.']"),
        ("my video 01", "[['0:00:05.000', '0:00:16.500']]", "['A dog runs on a beach.']"),
        ("it's \"quoted\"", "[['1:00:00.250', '1:00:10.000']]", "['A car drives down a road.']"),
        ("a/b", "[['0:00:00.000', '0:00:04.000'], ['0:00:04.000', '0:00:09.000']]",
         "['A chef cuts onions.', 'He stirs the soup.']"),
        ("NA", "[['0:00:01.000', '0:00:02.000']]", "['Text on a screen.']"),
    ]
    frame = pd.DataFrame(
        [{"videoID": v, "url": f"https://www.youtube.com/watch?v={v}", "timestamp": t, "caption": c,
          "matching_score": repr([0.45] * t.count("], [") + [0.45])} for v, t, c in rows]
    )
    frame.to_csv(tmp_path / "meta.csv", index=False)
    df = read_metadata(tmp_path / "meta.csv")
    sample, table = write_sample(df, SampleConfig(size=3, seed=0, population=5), tmp_path / "a.csv",
                                 tmp_path / "b.csv")
    assert len(sample) == 3
    back = read_sample(tmp_path / "a.csv")
    assert set(back["videoID"]) <= set(df["videoID"])
    assert set(back["video"]) <= set(df["video"])
    cats = dict(zip(df["videoID"], categorize(df, SampleConfig()), strict=True))
    assert cats["my video 01"] == "animals" and cats["it's \"quoted\""] == "vehicles"
    assert cats["a/b"] == "food"


def test_largest_remainder_is_the_one_rounding_of_sample_and_split() -> None:
    """The sampler's quotas and the dataset's split sizes share one apportionment: n seats in all,
    each within one seat of its quota, ties to the earlier weight."""
    from tav_pipeline.apportion import largest_remainder
    from tav_pipeline.dataset import SplitConfig, split_counts

    rng = np.random.default_rng(0)
    for _ in range(200):
        weights = [int(w) for w in rng.integers(0, 50, size=int(rng.integers(1, 6)))]
        n = int(rng.integers(0, 120))
        seats = largest_remainder(n, weights)
        if sum(weights) == 0:
            assert seats == [0] * len(weights)
            continue
        assert sum(seats) == n
        assert all(abs(s - n * w / sum(weights)) < 1 for s, w in zip(seats, weights, strict=True))
    assert largest_remainder(1, [1, 1]) == [1, 0] and largest_remainder(3, [1, 1]) == [2, 1]
    counts, shrunk = split_counts(10, SplitConfig(policy="ratio", train=8, val=1, test=1))
    assert counts == {"train": 8, "val": 1, "test": 1} and not shrunk
