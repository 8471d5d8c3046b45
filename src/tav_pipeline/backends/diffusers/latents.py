"""Training data of the diffusers backend: which frames of each clip train, the latent cache, and
the two datasets the loop reads (cached latents, or videos encoded on the fly).

Frame selection follows Open-Sora-Plan v1.3's ``T2V_dataset`` so both backends see the same
frames: the clip is resampled from its own frame rate to ``train.fps`` (every ``fps / train_fps``-th
frame, all frames when the rates are within 0.1), then every ``sample_rate``-th frame is kept; a
window of ``num_frames`` is taken from that (``TemporalRandomCrop``: a uniform start in
``[0, n - num_frames - 1]``). A clip with fewer frames trains on the longest ``4k + 1`` it has,
down to ``min_frames``; shorter clips cannot be encoded by a 4x temporal VAE and are left out (and
clips shorter than ``num_frames`` are left out with probability ``drop_short_ratio``, drawn as
Open-Sora-Plan draws it). Frames are centre-cropped to the target aspect and resized with
antialiased bilinear interpolation, then scaled to [-1, 1] (``CenterCropResizeVideo`` + ``ae_norm``).

The cache (rule ``cache_latents``) encodes each clip's prompt, the empty prompt (for the caption
dropout), and ``windows_per_clip`` windows per clip through the frozen VAE once. It stores the
VAE posterior's mean and log-variance, so every epoch still draws fresh latents from it as the
online path does. An epoch then costs only the transformer.

Every random choice of a sample (its clip, window, caption dropout) is a function of
``(train.seed, stream position)``: a resumed run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm

from tav_pipeline.errors import ConfigError, MissingAssetError
from tav_pipeline.train.config import TrainConfig
from tav_pipeline.train.frames import resampled_indices, window_length

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
OSP_DROP_SHORT_SEED = 42
"""Open-Sora-Plan seeds the generator of its ``drop_short_ratio`` draws with 42."""


@dataclass(frozen=True)
class ClipPlan:
    """One train clip and the frames it can train on."""

    index: int
    """Position in the usable list (names the cache files)."""
    video: str
    clip: str
    prompt: str
    fps: float
    frames: int
    cut_frame: int
    """The cut's frame in the clip (-1: unknown)."""
    indices: tuple[int, ...]
    """Clip frame numbers after resampling to ``train.fps`` (and ``sample_rate``)."""
    length: int
    """Frames per training window: ``num_frames`` or the longest 4k+1 the clip has."""

    @property
    def cut_position(self) -> int:
        """Index in :attr:`indices` of the first frame at or after the cut (-1 unknown)."""
        if self.cut_frame < 0:
            return -1
        return int(np.searchsorted(np.asarray(self.indices), self.cut_frame))

    def starts(self) -> int:
        """Number of distinct window starts Open-Sora-Plan's random crop can pick."""
        return max(0, len(self.indices) - self.length - 1) + 1


def train_items(tav: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``split == "train"`` items of a ``tav.json``."""
    items = [i for i in tav.get("items", []) if i.get("split") == "train"]
    if not items:
        raise ConfigError("dataset.split.train", "tav.json has no train items")
    return items


def plan_clips(items: Sequence[dict[str, Any]], cfg: TrainConfig) -> tuple[list[ClipPlan], list[dict[str, Any]]]:
    """The clips that can train and the reasons the others cannot.

    Raises:
        MissingAssetError: a clip file named in tav.json is not on disk (rule ``extract_clip``).
    """
    gen = torch.Generator().manual_seed(OSP_DROP_SHORT_SEED)
    usable: list[ClipPlan] = []
    rejected: list[dict[str, Any]] = []
    for item in items:
        clip = str(item["clip"])
        if not Path(clip).is_file():
            raise MissingAssetError(clip, "extract_clip", f"clip of train item {item.get('video')!r}")
        fps, frames = float(item.get("fps") or 0), int(item.get("frames") or 0)
        if fps <= 0 or frames <= 0:
            rejected.append({"video": item.get("video"), "reason": "no_fps_or_frames"})
            continue
        indices = resampled_indices(frames, fps, cfg.fps, cfg.sample_rate)
        if len(indices) < cfg.num_frames and torch.rand(1, generator=gen).item() < cfg.drop_short_ratio:
            rejected.append({"video": item.get("video"), "reason": "shorter_than_num_frames", "frames": len(indices)})
            continue
        length = window_length(len(indices), cfg.num_frames, cfg.min_frames)
        if length == 0:
            rejected.append({"video": item.get("video"), "reason": "too_short", "frames": len(indices)})
            continue
        cut_time = item.get("cut_time_in_clip")
        cut_frame = int(round(float(cut_time) * fps)) if cut_time is not None else -1
        usable.append(
            ClipPlan(
                len(usable),
                str(item.get("video")),
                clip,
                str(item["prompt"]),
                fps,
                frames,
                cut_frame,
                tuple(indices),
                length,
            )
        )
    for r in rejected:
        log.warning("train clip %s left out: %s", r["video"], r["reason"])
    return usable, rejected


def window_start(plan: ClipPlan, mode: str, rng: np.random.Generator) -> int:
    """Where a window starts in :attr:`ClipPlan.indices` (``random`` or centred on the ``cut``)."""
    last = max(0, len(plan.indices) - plan.length - 1)
    if mode == "cut" and plan.cut_position >= 0:
        return int(min(max(0, plan.cut_position - plan.length // 2), len(plan.indices) - plan.length))
    return int(rng.integers(0, last + 1))


def cache_starts(plan: ClipPlan, cfg: TrainConfig) -> list[int]:
    """The windows the cache encodes for a clip: ``windows_per_clip`` distinct random starts
    (fewer when the clip has fewer), or the one cut-centred window."""
    if cfg.diffusers.window == "cut" and plan.cut_position >= 0:
        return [window_start(plan, "cut", np.random.default_rng(0))]
    rng = np.random.default_rng([cfg.seed, plan.index, 7])
    k = min(cfg.diffusers.windows_per_clip, plan.starts())
    return sorted(int(s) for s in rng.choice(plan.starts(), size=k, replace=False))


def center_crop_resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[T, 3, h, w]`` uint8 -> ``[T, 3, height, width]`` float in [-1, 1] (Open-Sora-Plan's
    ``CenterCropResizeVideo`` then ``2x - 1``)."""
    h, w = frames.shape[-2:]
    ratio = height / width
    new_h, new_w = (int(w * ratio), w) if h / w > ratio else (h, int(h / ratio))
    top, left = int(round((h - new_h) / 2.0)), int(round((w - new_w) / 2.0))
    crop = frames[..., top : top + new_h, left : left + new_w].float() / 255.0
    out = torch.nn.functional.interpolate(
        crop, size=(height, width), mode="bilinear", align_corners=True, antialias=True
    )
    return out.clamp(0, 1) * 2.0 - 1.0


def load_windows(plan: ClipPlan, starts: Sequence[int], height: int, width: int) -> list[torch.Tensor]:
    """The windows' frames, each ``[3, length, height, width]`` in [-1, 1] (the clip is decoded once)."""
    from tav_pipeline.video import frames_at

    wanted = sorted({i for s in starts for i in plan.indices[s : s + plan.length]})
    images = dict(zip(wanted, frames_at(plan.clip, wanted, pixel_format="rgb24")))
    out = []
    for s in starts:
        video = torch.from_numpy(np.stack([images[i] for i in plan.indices[s : s + plan.length]])).permute(0, 3, 1, 2)
        out.append(center_crop_resize(video, height, width).permute(1, 0, 2, 3).contiguous())
    return out


def load_window(plan: ClipPlan, start: int, height: int, width: int) -> torch.Tensor:
    """One window's frames as ``[3, length, height, width]`` in [-1, 1]."""
    return load_windows(plan, [start], height, width)[0]


def cache_settings(cfg: TrainConfig, pretrained: str) -> dict[str, Any]:
    """What a cache depends on; the loop refuses a cache made with other settings."""
    d = cfg.diffusers
    return {
        "pretrained": pretrained,
        "num_frames": cfg.num_frames,
        "min_frames": cfg.min_frames,
        "height": cfg.height,
        "width": cfg.width,
        "fps": cfg.fps,
        "sample_rate": cfg.sample_rate,
        "drop_short_ratio": cfg.drop_short_ratio,
        "seed": cfg.seed,
        "window": d.window,
        "windows_per_clip": d.windows_per_clip,
        "encode_dtype": d.encode_dtype,
        "max_sequence_length": d.max_sequence_length,
    }


def max_sequence_length(cfg: TrainConfig, transformer_config: Any) -> int:
    """Prompt tokens: ``train.diffusers.max_sequence_length`` or the model's ``max_text_seq_length``."""
    if cfg.diffusers.max_sequence_length:
        return cfg.diffusers.max_sequence_length
    return int(
        transformer_config.get("max_text_seq_length", 226)
        if isinstance(transformer_config, dict)
        else transformer_config.max_text_seq_length
    )


def cache_latents(tav_json: str | Path, pretrained: str, out_dir: str | Path, cfg: TrainConfig) -> dict[str, Any]:
    """Rule ``cache_latents``: encode every usable train clip's prompt and windows once.

    Arguments:
        tav_json: ``results/tav.json``.
        pretrained: the pipeline folder or hub id.
        out_dir: cache folder (``index.json``, ``text/``, ``video/``).
        cfg: the ``train:`` settings.

    Returns:
        the index written to ``out_dir/index.json``.
    """
    from safetensors.torch import save_file

    from tav_pipeline.backends.diffusers.families import DTYPES, family_for
    from tav_pipeline.devices import resolve_device

    d = cfg.diffusers
    tav = json.loads(Path(tav_json).read_text())
    usable, rejected = plan_clips(train_items(tav), cfg)
    if not usable:
        raise ConfigError("train", f"no train clip is usable ({len(rejected)} left out)")
    family = family_for(pretrained, d.revision, cfg.prediction_type)
    device = torch.device(resolve_device(d.device, key="train.diffusers.device"))
    dtype = DTYPES[d.encode_dtype]
    transformer_config = family.transformer_cls().load_config(
        pretrained, subfolder=family.transformer_subfolder, revision=d.revision
    )
    family.check_shape(_Cfg(transformer_config), cfg.num_frames, cfg.height, cfg.width)
    seq_len = max_sequence_length(cfg, transformer_config)
    enc = family.load_encoders(pretrained, d.revision, device, dtype)
    out = Path(out_dir)
    (out / "text").mkdir(parents=True, exist_ok=True)
    (out / "video").mkdir(parents=True, exist_ok=True)
    save_file(
        {"embeds": family.encode_prompts(enc, [""], seq_len)[0].float().cpu().contiguous()},
        str(out / "text" / "empty.safetensors"),
    )
    entries = []
    for plan in tqdm(usable, desc="cache latents", unit="clip"):
        text_file = f"text/{plan.index:05d}.safetensors"
        embeds = family.encode_prompts(enc, [plan.prompt], seq_len)[0]
        save_file({"embeds": embeds.float().cpu().contiguous()}, str(out / text_file))
        windows = []
        starts = cache_starts(plan, cfg)
        for j, (start, video) in enumerate(zip(starts, load_windows(plan, starts, cfg.height, cfg.width))):
            params = family.encode_video(enc, video.unsqueeze(0))[0]
            name = f"video/{plan.index:05d}_w{j}.safetensors"
            save_file({"params": params.float().cpu().contiguous()}, str(out / name))
            first, last = plan.indices[start], plan.indices[start + plan.length - 1]
            windows.append(
                {"file": name, "start": start, "frames": plan.length, "has_cut": first < plan.cut_frame <= last}
            )
        entries.append(
            {**{k: v for k, v in asdict(plan).items() if k != "indices"}, "text": text_file, "windows": windows}
        )
    index = {
        "settings": cache_settings(cfg, pretrained),
        "family": family.pipeline_class,
        "scaling_factor": family.latent_scaling(enc),
        "sequence_length": seq_len,
        "empty": "text/empty.safetensors",
        "items": entries,
        "rejected": rejected,
    }
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    share = np.mean([w["has_cut"] for e in entries for w in e["windows"]]) if entries else 0.0
    log.info(
        "cached %d clip(s), %d window(s) (%.0f%% hold the cut), %d left out",
        len(entries),
        sum(len(e["windows"]) for e in entries),
        100 * share,
        len(rejected),
    )
    return index


def cache_latents_step(
    tav_json: str | Path, out_dir: str | Path, train: dict[str, Any], threads: int = 0
) -> dict[str, Any]:
    """Rule ``cache_latents``: :func:`cache_latents` of ``train.diffusers.pretrained``."""
    if threads > 0:
        torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(train)
    return cache_latents(tav_json, cfg.diffusers.pretrained, out_dir, cfg)


class _Cfg:
    """Attribute access to a config dict (what ``load_config`` returns)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        return self._d.get(name)


def read_index(latents_dir: str | Path, cfg: TrainConfig, pretrained: str) -> dict[str, Any]:
    """A cache's index, checked against the settings it must have been made with.

    Raises:
        MissingAssetError: no cache (rule ``cache_latents``).
        ConfigError: the cache was made with other settings.
    """
    path = Path(latents_dir) / INDEX_FILE
    if not path.is_file():
        raise MissingAssetError(path, "cache_latents")
    index: dict[str, Any] = json.loads(path.read_text())
    want = cache_settings(cfg, pretrained)
    diff = {k: (index["settings"].get(k), v) for k, v in want.items() if index["settings"].get(k) != v}
    if diff:
        raise ConfigError(
            "train", f"latent cache {latents_dir} was made with other settings {diff}; rerun cache_latents"
        )
    return index


def pass_order(seed: int, n: int, pass_index: int) -> list[int]:
    """The clip order of one pass over the data (a seeded permutation per pass)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + pass_index)
    return [int(i) for i in torch.randperm(n, generator=gen)]


def sample_rng(seed: int, position: int) -> np.random.Generator:
    """The random source of one sample of the stream (window, caption dropout)."""
    return np.random.default_rng([seed, position, 11])


def noise_seed(rng: np.random.Generator) -> int:
    """The seed of a sample's diffusion draws (posterior sample, noise, timestep). Drawn per
    sample, not from a process's RNG, so a step's draws do not depend on how its global batch is
    split across processes (N processes x batch 1 train as 1 process x batch N)."""
    return int(rng.integers(0, 2**62))


class StreamSampler(Sampler[int]):
    """Stream positions ``[start, end)`` of one process: batch ``b`` of step ``g`` of process
    ``r`` is ``(g * world + r) * batch + b``."""

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start_step, self.end_step = start_step, end_step
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            base = (step * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.batch_size


class _Stream(Dataset[dict[str, Any]]):
    def __init__(self, n: int, seed: int, text_drop_prob: float) -> None:
        self.n, self.seed, self.text_drop_prob = n, seed, text_drop_prob
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:  # the stream is unbounded; a sampler picks positions
        return 2**62

    def locate(self, position: int) -> tuple[int, np.random.Generator, bool]:
        """Clip index, the sample's random source, and whether its caption is dropped."""
        pass_index, offset = divmod(position, self.n)
        if pass_index not in self._orders:
            self._orders = {pass_index: pass_order(self.seed, self.n, pass_index)}
        rng = sample_rng(self.seed, position)
        drop = bool(rng.random() < self.text_drop_prob)
        return self._orders[pass_index][offset], rng, drop


class CachedClips(_Stream):
    """Samples from the latent cache: ``{"params", "embeds", "clip", "dropped"}``."""

    def __init__(self, latents_dir: str | Path, index: dict[str, Any], seed: int, text_drop_prob: float) -> None:
        super().__init__(len(index["items"]), seed, text_drop_prob)
        self.root = Path(latents_dir)
        self.items = index["items"]
        self.empty = self.root / index["empty"]

    def __getitem__(self, position: int) -> dict[str, Any]:
        from safetensors.torch import load_file

        i, rng, drop = self.locate(position)
        item = self.items[i]
        window = item["windows"][int(rng.integers(0, len(item["windows"])))]
        text = self.empty if drop else self.root / item["text"]
        return {
            "params": load_file(str(self.root / window["file"]))["params"],
            "embeds": load_file(str(text))["embeds"],
            "clip": i,
            "dropped": drop,
            "seed": noise_seed(rng),
        }


class VideoClips(_Stream):
    """Samples decoded on the fly: ``{"video", "prompt", "clip", "dropped"}`` (Open-Sora-Plan's way)."""

    def __init__(self, plans: Sequence[ClipPlan], cfg: TrainConfig) -> None:
        super().__init__(len(plans), cfg.seed, cfg.text_drop_prob)
        self.plans, self.cfg = list(plans), cfg

    def __getitem__(self, position: int) -> dict[str, Any]:
        i, rng, drop = self.locate(position)
        plan = self.plans[i]
        start = window_start(plan, self.cfg.diffusers.window, rng)
        return {
            "video": load_window(plan, start, self.cfg.height, self.cfg.width),
            "prompt": "" if drop else plan.prompt,
            "clip": i,
            "dropped": drop,
            "seed": noise_seed(rng),
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a batch; clips of different lengths cannot share one."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ConfigError(
                    "train.batch_size",
                    f"a batch mixes shapes {sorted(shapes)}; use batch_size 1 or drop_short_ratio 1.0",
                )
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out
