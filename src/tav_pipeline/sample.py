"""Draw the paper's stratified sample of Panda-70M validation videos.

The paper draws 500 of the split's 2,000 videos "so that the category distribution matches the
whole split", but Panda-70M's metadata has no category column. This module classifies each video
(offline, deterministic) by whole-word keyword hits in its joined clip captions into the paper's
domains (:data:`DOMAINS`) or ``other``.

Allocation is proportional with Hamilton's largest-remainder method, so each category's sample
share is within ``1/size`` of its population share. There is no forced minimum per category: a
category whose quota is below one seat gets a seat only if its remainder ranks high enough (a
forced minimum would break the ``1/size`` bound); categories left without a seat are logged and
show ``sample_count`` 0 in the category table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tav_pipeline.apportion import largest_remainder
from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError, MetadataError, RecordError

log = logging.getLogger(__name__)

OTHER = "other"
"""The category of videos no domain claims."""

DOMAINS: tuple[str, ...] = (
    "animals", "scenery", "food", "sports", "activities", "vehicles", "tutorials", "news & TV", "gaming",
)
"""The paper's domains, in tie-break order."""

DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": (
        "animal", "dog", "puppy", "puppies", "cat", "kitten", "horse", "pony", "cow", "cattle", "sheep",
        "goat", "pig", "duck", "bird", "parrot", "fish", "shark", "dolphin", "whale", "turtle", "lion",
        "tiger", "elephant", "monkey", "bear", "deer", "rabbit", "squirrel", "snake", "insect",
        "butterfly", "pet", "wildlife", "zoo",
    ),
    "scenery": (
        "landscape", "scenery", "mountain", "hill", "valley", "ocean", "sea", "beach", "coast", "shore",
        "lake", "river", "waterfall", "forest", "jungle", "desert", "canyon", "island", "sky", "cloud",
        "sunset", "sunrise", "skyline", "aerial view", "countryside", "meadow", "nature", "garden", "park",
        "city", "street",
    ),
    "food": (
        "food", "cooking", "cook", "chef", "kitchen", "recipe", "ingredient", "dish", "meal", "breakfast",
        "lunch", "dinner", "eating", "restaurant", "cake", "bread", "pizza", "burger", "sandwich", "meat",
        "vegetable", "fruit", "soup", "sauce", "salad", "noodle", "rice", "dessert", "baking", "oven",
        "frying pan", "cutting board",
    ),
    "sports": (
        "sport", "soccer", "football", "basketball", "baseball", "volleyball", "tennis", "golf", "hockey",
        "cricket", "rugby", "boxing", "wrestling", "martial arts", "athlete", "player", "team", "coach",
        "referee", "stadium", "match", "goal", "race", "marathon", "gym", "workout", "exercise",
        "skateboard", "skiing", "surfing", "swimming",
    ),
    "activities": (
        "dancing", "dance", "dancer", "singing", "singer", "guitar", "piano", "drum", "violin", "musician",
        "band", "concert", "performing", "performance", "stage", "party", "wedding", "celebration",
        "festival", "parade", "camping", "hiking", "fishing", "shopping", "painting", "drawing", "sewing",
        "knitting", "gardening", "yoga", "playground",
    ),
    "vehicles": (
        "car", "truck", "bus", "van", "suv", "jeep", "motorcycle", "motorbike", "scooter", "bicycle", "bike",
        "vehicle", "train", "tram", "airplane", "plane", "aircraft", "helicopter", "boat", "ship", "yacht",
        "tractor", "engine", "tire", "wheel", "steering wheel", "dashboard", "driving", "driver", "road",
        "highway", "traffic", "race car",
    ),
    "tutorials": (
        "tutorial", "how to", "instructions", "step", "demonstrates", "demonstrating", "demonstration",
        "explains", "explaining", "lecture", "lesson", "teacher", "classroom", "student", "whiteboard",
        "blackboard", "diagram", "presentation", "slide", "screen", "computer", "laptop", "software",
        "website", "app", "phone", "smartphone", "keyboard", "text", "tool", "repair", "unboxing", "makeup",
    ),
    "news & TV": (
        "news", "newscast", "reporter", "journalist", "anchor", "news anchor", "broadcast", "television",
        "tv", "tv show", "talk show", "show", "studio", "host", "interview", "interviewer", "podcast",
        "microphone", "press conference", "podium", "speech", "politician", "president", "debate", "panel",
        "audience", "talking", "speaking",
    ),
    "gaming": (
        "video game", "game", "gameplay", "gaming", "gamer", "minecraft", "fortnite", "roblox", "controller",
        "console", "playstation", "xbox", "nintendo", "character", "avatar", "level", "weapon", "gun",
        "sword", "shooting", "monster", "zombie", "cartoon", "animated", "animation", "3d",
    ),
}
"""Default keyword lists (lower case). A keyword also matches its plural (``+s``/``+es``);
multi-word keywords match across any whitespace. Rendered and animated footage counts as
``gaming``, the domain nearest to computer-generated imagery."""

SAMPLE_COLUMNS: tuple[str, ...] = ("video", "videoID", "url", "category", "span_start", "span_end", "text")
TABLE_COLUMNS: tuple[str, ...] = (
    "category", "population_count", "population_share", "sample_count", "sample_share", "difference",
)

@dataclass(frozen=True)
class SampleConfig:
    """How the sample is drawn."""

    size: int = 500
    seed: int = 2025
    categories: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    """Category name -> keywords, in tie-break order. Given in a config, it
    replaces the default dict as a whole."""
    population: int = 2000
    """Expected number of videos in the metadata (a warning is logged when it differs)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SampleConfig:
        """Build from a config mapping.

        Arguments:
            data: keys are field names; missing keys keep their defaults.

        Returns:
            The config, with keywords lower-cased, stripped and de-duplicated.

        Raises:
            ConfigError: unknown key, wrong type or inconsistent value.
        """
        data = dict(data or {})
        check_keys("sample", data, cls)
        for key in ("size", "seed", "population"):
            if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
                raise ConfigError(f"sample.{key}", f"must be an integer, got {data[key]!r}")
        if data.get("size", 1) < 1:
            raise ConfigError("sample.size", f"must be >= 1, got {data['size']}")
        if data.get("seed", 0) < 0:
            raise ConfigError("sample.seed", f"must be >= 0, got {data['seed']}")
        if data.get("population", 0) < 0:
            raise ConfigError("sample.population", f"must be >= 0, got {data['population']}")
        if "categories" in data:
            data["categories"] = _clean_categories(data["categories"])
        return cls(**data)

    @property
    def order(self) -> list[str]:
        """All category names, in tie-break order, ``other`` last."""
        return [*self.categories, OTHER]


def _clean_categories(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("sample.categories", "must be a non-empty mapping of name -> keyword list")
    out: dict[str, tuple[str, ...]] = {}
    for name, words in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("sample.categories", f"bad category name {name!r}")
        if name.strip().lower() == OTHER:
            raise ConfigError("sample.categories", f"'{OTHER}' is reserved for videos no category claims")
        if isinstance(words, str) or not isinstance(words, Sequence) or not words:
            raise ConfigError(f"sample.categories.{name}", "must be a non-empty list of keywords")
        cleaned: list[str] = []
        for w in words:
            if not isinstance(w, str) or not w.strip():
                raise ConfigError(f"sample.categories.{name}", f"bad keyword {w!r}")
            w = " ".join(w.lower().split())
            if w not in cleaned:
                cleaned.append(w)
        out[name.strip()] = tuple(cleaned)
    return out


# --------------------------------------------------------------------------------------------
# Classification


class KeywordClassifier:
    """Whole-word, case-insensitive keyword scoring of caption text.

    A category's score is the total number of keyword occurrences (each keyword counted on its own,
    so ``video game`` scores both ``video game`` and ``game``). The highest score wins; ties go to
    the category listed first; no hit gives ``other``.
    """

    def __init__(self, categories: Mapping[str, Sequence[str]]) -> None:
        """Arguments:
            categories: name -> keywords, in tie-break order.
        """
        self.names = list(categories)
        # (first word, pattern): the cheap substring test skips most regex searches
        self._patterns: list[list[tuple[str, re.Pattern[str]]]] = [
            [(w.lower().split()[0], self._compile(w)) for w in words] for words in categories.values()
        ]

    @staticmethod
    def _compile(word: str) -> re.Pattern[str]:
        body = r"\s+".join(re.escape(part) for part in word.lower().split())
        return re.compile(rf"(?<!\w){body}(?:s|es)?(?!\w)", re.IGNORECASE)

    def scores(self, text: str) -> dict[str, int]:
        """Arguments:
            text: caption text.

        Returns:
            Category name -> number of keyword hits.
        """
        lower = text.lower()
        return {
            name: sum(len(p.findall(lower)) for needle, p in patterns if needle in lower)
            for name, patterns in zip(self.names, self._patterns, strict=True)
        }

    def __call__(self, text: str) -> str:
        """Arguments:
            text: caption text.

        Returns:
            The winning category, or ``other``.
        """
        best, best_score = OTHER, 0
        for name, score in self.scores(text or "").items():
            if score > best_score:  # strict: an equal later score never displaces an earlier one
                best, best_score = name, score
        return best


def categorize(df: pd.DataFrame, cfg: SampleConfig) -> pd.Series:
    """Assign every video a category with :class:`KeywordClassifier`.

    Arguments:
        df: metadata from :func:`tav_pipeline.source.read_metadata` (its ``text`` column).
        cfg: sample settings.

    Returns:
        Category names, aligned with ``df``'s index, named ``category``.

    Raises:
        RecordError: ``df`` has no ``text`` column.
    """
    if "text" not in df.columns:
        raise RecordError("metadata", "the keyword classifier needs a 'text' column (read the CSV with source.read_metadata)")
    classify = KeywordClassifier(cfg.categories)
    cats = df["text"].astype(str).map(classify)
    return pd.Series(cats.to_numpy(dtype=object), index=df.index, name="category", dtype=object)


# --------------------------------------------------------------------------------------------
# Allocation and sampling


def allocate(counts: Mapping[str, int], size: int) -> dict[str, int]:
    """Proportional allocation by Hamilton's largest-remainder method.

    Each category gets ``floor(size * n_k / N)`` seats; the seats left go one each to the
    categories with the largest remainders ``size * n_k mod N`` (exact integers), ties to the
    category listed first. Every allocation is within one seat of its quota and never exceeds
    ``n_k``. With ``size >= N`` every video is taken.

    Arguments:
        counts: category -> population count, in tie-break order.
        size: seats to fill.

    Returns:
        Category -> number of videos to draw, same order.
    """
    total = sum(counts.values())
    if size >= total:
        return dict(counts)
    if size <= 0 or total == 0:
        return {k: 0 for k in counts}
    return dict(zip(counts, largest_remainder(size, list(counts.values())), strict=True))


def _draw(df: pd.DataFrame, categories: pd.Series, cfg: SampleConfig) -> pd.DataFrame:
    order = cfg.order
    counts = {c: int((categories == c).sum()) for c in order}
    seats = allocate(counts, cfg.size)
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(order))
    picked: list[pd.DataFrame] = []
    for name, seq in zip(order, seeds, strict=True):
        k = seats[name]
        if counts[name] and not k:
            log.info("category '%s' (%d videos) gets no seat: its quota is %.2f", name, counts[name],
                     cfg.size * counts[name] / max(1, len(df)))
        if not k:
            continue
        stratum = df[categories == name].sort_values("videoID", kind="stable")
        rng = np.random.default_rng(seq)
        rows = np.sort(rng.choice(len(stratum), size=k, replace=False))
        chosen = stratum.iloc[rows].copy()
        chosen["category"] = name
        picked.append(chosen)
    if not picked:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    out = pd.concat(picked).sort_values("video", kind="stable").reset_index(drop=True)
    return out[list(SAMPLE_COLUMNS)]


def _check_population(df: pd.DataFrame, cfg: SampleConfig) -> None:
    missing = [c for c in ("video", "videoID", "url", "span_start", "span_end", "text") if c not in df.columns]
    if missing:
        raise RecordError("metadata", f"lacks columns {missing} (read it with source.read_metadata)")
    if df.empty:
        raise MetadataError("metadata", "it has no videos to sample from")
    if cfg.population and len(df) != cfg.population:
        log.warning("the metadata has %d videos; the paper's split has %d (sample.population)",
                    len(df), cfg.population)
    if cfg.size >= len(df):
        log.warning("sample.size %d >= %d videos: taking them all", cfg.size, len(df))


def stratified_sample(df: pd.DataFrame, cfg: SampleConfig) -> pd.DataFrame:
    """Draw the stratified sample.

    Allocation: :func:`allocate` over the categories of :func:`categorize`. Inside a category the
    rows are ordered by videoID and ``k`` of them are drawn without replacement with a numpy
    Generator seeded from ``SeedSequence(seed).spawn(...)`` (one stream per category, so the
    draw does not depend on the CSV's row order or on other categories).

    Arguments:
        df: metadata from :func:`tav_pipeline.source.read_metadata`.
        cfg: sample settings.

    Returns:
        The sample, sorted by ``video``, with columns :data:`SAMPLE_COLUMNS`.

    Raises:
        RecordError: ``df`` lacks columns. MetadataError: it is empty.
    """
    _check_population(df, cfg)
    return _draw(df, categorize(df, cfg), cfg)


def category_table(population: pd.Series, sample: pd.Series, order: Sequence[str]) -> pd.DataFrame:
    """Compare category shares of the population and the sample.

    Arguments:
        population: the population's categories.
        sample: the sample's categories.
        order: category names to list, in order (all are listed, even when empty).

    Returns:
        Columns :data:`TABLE_COLUMNS`; shares are fractions; ``difference`` is sample share minus
        population share.
    """
    n_pop, n_sample = max(1, len(population)), max(1, len(sample))
    rows = []
    for name in order:
        pc, sc = int((population == name).sum()), int((sample == name).sum())
        ps, ss = pc / n_pop, sc / n_sample
        rows.append({"category": name, "population_count": pc, "population_share": round(ps, 6),
                     "sample_count": sc, "sample_share": round(ss, 6), "difference": round(ss - ps, 6)})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def write_sample(
    df: pd.DataFrame,
    cfg: SampleConfig,
    sample_csv: str | Path,
    categories_csv: str | Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the sample and write ``sample.csv`` and ``sample_categories.csv``.

    Arguments:
        df: metadata from :func:`tav_pipeline.source.read_metadata`.
        cfg: sample settings.
        sample_csv: destination of the sample (:data:`SAMPLE_COLUMNS`).
        categories_csv: destination of :func:`category_table`.

    Returns:
        The sample and the category table.
    """
    _check_population(df, cfg)
    cats = categorize(df, cfg)
    sample = _draw(df, cats, cfg)
    table = category_table(cats, sample["category"], cfg.order)
    for path, frame in ((sample_csv, sample), (categories_csv, table)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    log.info("sampled %d of %d videos (seed %d): %s", len(sample), len(df), cfg.seed,
             dict(zip(table["category"], table["sample_count"], strict=True)))
    return sample, table


def read_sample(csv_path: str | Path) -> pd.DataFrame:
    """Read a ``sample.csv`` written by :func:`write_sample`, keeping IDs as text.

    Arguments:
        csv_path: the file.

    Returns:
        The sample; ``span_start``/``span_end`` as floats, every other column as strings.
    """
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False)
    for col in ("span_start", "span_end"):
        if col in df.columns:
            df[col] = df[col].astype(float)
    return df
