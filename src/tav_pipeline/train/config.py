"""Typed settings of the post-training stage: ``train:`` in config.yaml (paper section 4).

Every number defaults to the paper's value. Where the paper is ambiguous the key is a named choice:

``epoch_steps``
    The paper says "100 training steps in total" with batch size 1, yet reports checkpoints at
    epochs 16, 24 and 36 and "about 2 hours per epoch". Those cannot all hold. ``"dataset"`` (the
    default) reads an epoch as one pass over the train split (about 450 steps at batch size 1,
    which matches ~2 h per epoch); an integer ``N`` makes every "epoch" exactly ``N`` optimizer
    steps (``100`` is the literal reading, each checkpoint 100 steps after the previous epoch).
``text_drop_prob``
    The paper's "guidance scale 0.1" during training. Open-Sora-Plan's trainer has no training
    guidance scale; the only 0.1 it takes is ``--cfg``, the probability of replacing a caption with
    the empty string (classifier-free guidance dropout). That is the reading used here.
``opensora.rescale_betas_zero_snr``
    Not named by the paper; the official v1.3 training and sampling scripts pass it, and the v1.3
    checkpoint was trained with it, so it defaults to on.
``num_gpus``, ``lr_scaling``
    The paper trains in one process. ``num_gpus: N`` runs N data-parallel processes (one per GPU;
    with ``device: cpu``, N CPU processes) under DeepSpeed ZeRO-2, which then shards the optimizer
    state and the gradients N ways. ``batch_size`` stays per process, so one optimizer step takes
    ``batch_size x N`` clips (the global batch). With ``epoch_steps: dataset`` an epoch stays one
    pass over the data, i.e. ``usable_clips // (batch_size x N)`` steps; an integer ``epoch_steps``
    stays that many steps, each of the global batch. The learning rate is ``learning_rate`` as
    given (``lr_scaling: none``, as Open-Sora-Plan without ``--scale_lr``), or multiplied by ``N``
    (``linear``) or by ``sqrt(N)`` (``sqrt``), so that ``learning_rate`` stays the rate of one process.
``opensora.drop_short_ratio``
    Not named by the paper; ``0.0`` as in the official v1.3 script (clips shorter than
    ``num_frames`` train on the longest 4k+1 frames they have, down to 29). The argparse default of
    that trainer (1.0) would drop every clip shorter than 33 frames at 8 fps.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from tav_pipeline.backends.registry import names as backend_names
from tav_pipeline.config import check_keys
from tav_pipeline.errors import ConfigError

Distributed = Literal["deepspeed", "plain"]
LrScaling = Literal["none", "linear", "sqrt"]
Window = Literal["random", "cut"]
EncodeDtype = Literal["float32", "float16", "bfloat16"]
PipelineDtype = Literal["auto", "float32", "bfloat16", "float16"]
"""Pipeline precision; ``auto``: bfloat16 on CUDA, float32 on CPU."""

OPENSORA_COMMIT = "c41050ae06ef35dd9da531d29431dbea6e53a9d9"
"""The commit of Open-Sora-Plan's tag v1.3.1 (the version the paper fine-tuned)."""


@dataclass(frozen=True)
class DiffusersConfig:
    """``train.diffusers``: any diffusers text-to-video pipeline, post-trained with the paper's recipe."""

    pretrained: str = "resources/diffusers/CogVideoX-2b"
    """Local folder in ``save_pretrained`` layout, or a hub id (downloaded into the hub cache)."""
    hub_id: str = "THUDM/CogVideoX-2b"
    """Where the rule ``fetch_diffusers_model`` downloads ``pretrained`` from when it is a missing
    local folder (empty: place it by hand)."""
    revision: str = "main"
    device: str = "auto"
    """``auto``: CUDA when available, else CPU."""
    cache_latents: bool = True
    """Encode prompts and VAE latents once (rule ``cache_latents``) so an epoch costs only the
    transformer. Off: decode and encode every sample on the fly, as Open-Sora-Plan does."""
    windows_per_clip: int = 4
    """Cached windows per clip; each epoch draws one of them (Open-Sora-Plan draws a new random
    window every time it reads a clip, which caching can only approximate)."""
    window: Window = "random"
    """``random``: where the ``num_frames`` window sits in a longer clip, uniformly at random, as
    Open-Sora-Plan's ``TemporalRandomCrop`` (a 4 s window of a 10 s clip then holds the cut about
    two times in three). ``cut``: beyond the paper, the window is centred on the clip's cut."""
    encode_dtype: EncodeDtype = "bfloat16"
    """Precision of the frozen VAE and text encoder while encoding (Open-Sora-Plan: the mixed
    precision dtype)."""
    max_sequence_length: int = 0
    """Prompt tokens; 0 takes the model's own (CogVideoX: ``max_text_seq_length`` = 226)."""
    dataloader_num_workers: int = 2
    allow_tf32: bool = True

    def __post_init__(self) -> None:
        if not self.pretrained:
            raise ConfigError("train.diffusers.pretrained", "must name a folder or a hub id")
        if self.windows_per_clip < 1:
            raise ConfigError("train.diffusers.windows_per_clip", "must be >= 1")
        if self.window not in ("random", "cut"):
            raise ConfigError("train.diffusers.window", f"unknown value {self.window!r} (random or cut)")
        if self.encode_dtype not in typing.get_args(EncodeDtype):
            raise ConfigError("train.diffusers.encode_dtype", f"unknown dtype {self.encode_dtype!r}")
        if self.max_sequence_length < 0 or self.dataloader_num_workers < 0:
            raise ConfigError("train.diffusers", "max_sequence_length and dataloader_num_workers must be >= 0")


@dataclass(frozen=True)
class OpenSoraConfig:
    """``train.opensora``: Open-Sora-Plan v1.3.1's own trainer, run from a pinned checkout."""

    repo: str = "resources/Open-Sora-Plan"
    """Checkout of Open-Sora-Plan (the rule ``fetch_opensora`` clones it where the network allows)."""
    git_url: str = "https://github.com/PKU-YuanGroup/Open-Sora-Plan.git"
    commit: str = OPENSORA_COMMIT
    check_commit: bool = True
    """Refuse a checkout whose HEAD is not ``commit`` (off: any folder with the trainer is used)."""
    weights_hub_id: str = "LanguageBind/Open-Sora-Plan-v1.3.0"
    pretrained: str = "resources/models/Open-Sora-Plan-v1.3.0/any93x640x640"
    ae: str = "WFVAEModel_D8_4x8x8"
    ae_path: str = "resources/models/Open-Sora-Plan-v1.3.0/vae"
    text_encoder_name_1: str = "google/mt5-xxl"
    cache_dir: str = "resources/cache_dir"
    model: Literal["OpenSoraT2V_v1_3-2B/122"] = "OpenSoraT2V_v1_3-2B/122"
    sparse1d: bool = True
    sparse_n: Literal[4] = 4
    interpolation_scale_t: float = 1.0
    interpolation_scale_h: float = 1.0
    interpolation_scale_w: float = 1.0
    rescale_betas_zero_snr: bool = True
    model_max_length: int = 512
    dataloader_num_workers: int = 8
    use_decord: bool = True
    allow_tf32: bool = True
    report_to: str = "tensorboard"
    relaunch: Literal["per_epoch", "repeat"] = "per_epoch"
    """The trainer makes ONE pass over its annotation per launch. ``per_epoch``: one launch per
    epoch, each resuming from the latest checkpoint. ``repeat``: one launch per job, the
    annotation repeated once per epoch to train (fewer model loads, epochs no longer disjoint
    passes)."""
    data_order: Literal["upstream", "per_epoch"] = "upstream"
    """``upstream``: the annotation is written in the same order for every launch, so v1.3.1's
    sampler (reseeded with 42 at each launch, no flag to change it) replays the same clip order
    every epoch, as the official scripts do. ``per_epoch``: each epoch's copy of the annotation is
    shuffled with (``train.seed``, epoch), giving each epoch its own order through the same sampler."""
    unusable_clips: Literal["drop", "error"] = "drop"
    """Clips the trainer would silently skip (too short, odd aspect, a shape bucket of fewer than 4
    clips): ``drop`` leaves them out of the annotation and lists them in the plan and the log;
    ``error`` stops before launching."""
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.relaunch not in ("per_epoch", "repeat"):
            raise ConfigError("train.opensora.relaunch", f"unknown value {self.relaunch!r}")
        if self.data_order not in ("upstream", "per_epoch"):
            raise ConfigError("train.opensora.data_order", f"unknown value {self.data_order!r} (upstream or per_epoch)")
        if self.unusable_clips not in ("drop", "error"):
            raise ConfigError("train.opensora.unusable_clips", f"unknown value {self.unusable_clips!r}")


@dataclass(frozen=True)
class TrainConfig:
    """``train:`` in config.yaml. Defaults are the paper's section 4 settings."""

    backend: str = "opensora"
    """A backend of :mod:`tav_pipeline.backends` (one of its subpackages)."""
    model: str = "opensora_plan"
    """Name of the post-trained model in ``results/checkpoints/{model}`` and ``results/generated/{model}``."""
    epochs: tuple[int, ...] = (16, 24, 36)
    epoch_steps: str | int = "dataset"
    seed: int = 1234
    num_frames: int = 33
    height: int = 256
    width: int = 256
    fps: float = 8
    sample_rate: int = 1
    min_frames: int = 29
    """Fewest frames a clip may train on (Open-Sora-Plan's fixed 29)."""
    drop_short_ratio: float = 0.0
    batch_size: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-15
    max_grad_norm: float = 1.0
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    use_ema: bool = True
    ema_decay: float = 0.9999
    ema_start_step: int = 0
    gradient_checkpointing: Literal[True, False, "auto"] = True
    """Recompute activations in the backward pass (paper: on). ``auto`` (diffusers backend): off
    when a measured probe says the step fits the GPU without it, on otherwise; off on a CPU
    (:func:`tav_pipeline.train.loop.resolve_checkpointing`). The Open-Sora-Plan backend reads
    ``auto`` as on."""
    snr_gamma: float = 5.0
    """Min-SNR weighting (0 turns it off: plain MSE)."""
    prediction_type: Literal["v_prediction", "epsilon"] = "v_prediction"
    text_drop_prob: float = 0.1
    distributed: Distributed = "deepspeed"
    zero_stage: Literal[0, 1, 2] = 2
    num_gpus: int = 1
    """Data-parallel training processes, one per GPU (paper: 1). On a CPU, processes."""
    lr_scaling: LrScaling = "none"
    """How the learning rate follows ``num_gpus``: ``none``, ``linear`` (x N), ``sqrt`` (x sqrt N)."""
    checkpointing_steps: int = 0
    """Extra resumable saves every this many steps inside a training job (diffusers backend);
    0: only at epoch ends."""
    diffusers: DiffusersConfig = field(default_factory=DiffusersConfig)
    opensora: OpenSoraConfig = field(default_factory=OpenSoraConfig)

    def __post_init__(self) -> None:
        if self.backend not in backend_names():
            raise ConfigError("train.backend", f"unknown backend {self.backend!r} ({', '.join(backend_names())})")
        if not self.model or "/" in self.model:
            raise ConfigError("train.model", "must be a non-empty name without '/'")
        if not self.epochs or any(int(e) < 1 for e in self.epochs) or len(set(self.epochs)) != len(self.epochs):
            raise ConfigError("train.epochs", "must be distinct positive integers")
        if self.epoch_steps != "dataset" and not (isinstance(self.epoch_steps, int) and self.epoch_steps > 0):
            raise ConfigError("train.epoch_steps", f"must be 'dataset' or a positive integer, got {self.epoch_steps!r}")
        if (self.num_frames - 1) % 4 != 0:
            raise ConfigError("train.num_frames", f"{self.num_frames} is not 4k+1 (the video VAEs compress time by 4)")
        if self.min_frames > self.num_frames or (self.min_frames - 1) % 4 != 0:
            raise ConfigError("train.min_frames", "must be 4k+1 and <= num_frames")
        if self.height % 16 or self.width % 16:
            raise ConfigError(
                "train.height", f"{self.height}x{self.width}: both must be multiples of 16 (VAE stride 8 x patch 2)"
            )
        if self.fps <= 0 or self.sample_rate < 1 or self.batch_size < 1:
            raise ConfigError("train", "fps must be > 0, sample_rate and batch_size >= 1")
        if not 0.0 <= self.drop_short_ratio <= 1.0 or not 0.0 <= self.text_drop_prob <= 1.0:
            raise ConfigError("train", "drop_short_ratio and text_drop_prob must lie in [0, 1]")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError("train.mixed_precision", f"unknown value {self.mixed_precision!r}")
        if self.prediction_type not in ("v_prediction", "epsilon"):
            raise ConfigError("train.prediction_type", f"unknown value {self.prediction_type!r}")
        if self.gradient_checkpointing not in (True, False, "auto"):
            raise ConfigError(
                "train.gradient_checkpointing", f"unknown value {self.gradient_checkpointing!r} (true, false or auto)"
            )
        if self.distributed not in ("deepspeed", "plain"):
            raise ConfigError("train.distributed", f"unknown value {self.distributed!r} (deepspeed or plain)")
        if self.zero_stage not in (0, 1, 2):
            raise ConfigError("train.zero_stage", "must be 0, 1 or 2 (stage 3 would shard the EMA-tracked weights)")
        if self.num_gpus < 1:
            raise ConfigError("train.num_gpus", f"must be >= 1, got {self.num_gpus}")
        if self.lr_scaling not in ("none", "linear", "sqrt"):
            raise ConfigError("train.lr_scaling", f"unknown value {self.lr_scaling!r} (none, linear or sqrt)")
        if self.num_gpus > 1 and self.distributed == "plain":
            raise ConfigError(
                "train.num_gpus", "several processes need train.distributed: deepspeed (plain runs one process)"
            )
        if self.snr_gamma < 0 or self.learning_rate <= 0 or not 0 < self.ema_decay < 1:
            raise ConfigError("train", "snr_gamma must be >= 0, learning_rate > 0, 0 < ema_decay < 1")

    @property
    def sorted_epochs(self) -> list[int]:
        return sorted(int(e) for e in self.epochs)

    def previous_epoch(self, epoch: int) -> int:
        """The configured epoch a job for ``epoch`` resumes from (0: the pretrained model)."""
        before = [e for e in self.sorted_epochs if e < epoch]
        return before[-1] if before else 0

    @property
    def global_batch_size(self) -> int:
        """Clips per optimizer step: ``batch_size`` per process times ``num_gpus`` processes."""
        return self.batch_size * self.num_gpus

    @property
    def effective_learning_rate(self) -> float:
        """The rate the optimizer uses: ``learning_rate`` scaled for ``num_gpus`` by ``lr_scaling``."""
        factor = {"none": 1.0, "linear": float(self.num_gpus), "sqrt": math.sqrt(self.num_gpus)}[self.lr_scaling]
        return self.learning_rate * factor

    def steps_per_epoch(self, usable_clips: int) -> int:
        """Optimizer steps in one epoch: one pass over ``usable_clips`` at the global batch size
        (``dataset``), or ``epoch_steps``."""
        if self.epoch_steps != "dataset":
            return int(self.epoch_steps)
        steps = usable_clips // self.global_batch_size
        if steps < 1:
            raise ConfigError(
                "train.batch_size",
                f"{usable_clips} usable clip(s) make no full batch of {self.batch_size} x {self.num_gpus} process(es)",
            )
        return steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["epochs"] = list(self.epochs)
        d["opensora"]["extra_args"] = list(self.opensora.extra_args)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        check_keys("train", d, cls)
        d = dict(d)
        if "diffusers" in d:
            check_keys("train.diffusers", d["diffusers"], DiffusersConfig)
            d["diffusers"] = DiffusersConfig(**d["diffusers"])
        if "opensora" in d:
            check_keys("train.opensora", d["opensora"], OpenSoraConfig)
            osp = dict(d["opensora"])
            osp["extra_args"] = tuple(str(a) for a in osp.get("extra_args", ()))
            d["opensora"] = OpenSoraConfig(**osp)
        if "epochs" in d:
            d["epochs"] = tuple(int(e) for e in d["epochs"])
        return cls(**d)


@dataclass(frozen=True)
class DiffusersSampling:
    """``generate.diffusers``: the pipeline call."""

    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    """CogVideoX's own default; the paper gives no inference settings."""
    negative_prompt: str = ""
    use_dynamic_cfg: bool = False
    device: str = "auto"
    dtype: PipelineDtype = "auto"
    """``auto``: bfloat16 on CUDA, float32 on CPU."""
    batch_size: int = 1
    """Prompts per pipeline call; video ``i`` keeps its own generator (seed ``seed + i``)."""


@dataclass(frozen=True)
class OpenSoraSampling:
    """``generate.opensora``: flags of ``opensora.sample.sample`` (defaults: the official v1.3 script)."""

    sample_method: str = "EulerAncestralDiscrete"
    num_sampling_steps: int = 100
    guidance_scale: float = 7.5
    max_sequence_length: int = 512
    save_memory: bool = False
    extra_args: tuple[str, ...] = ()


DEVICES = ("auto", "cpu", "cuda")
"""Where a pipeline runs: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` (or ``cuda:N``)."""
DTYPE_NAMES: tuple[str, ...] = typing.get_args(PipelineDtype)
TEXT_TO_VIDEO_ARGUMENTS = (
    "prompt",
    "num_frames",
    "height",
    "width",
    "num_inference_steps",
    "guidance_scale",
    "generator",
    "output_type",
)
"""``__call__`` arguments every text-to-video pipeline the pipeline drives must take."""
RESERVED_CALL_KWARGS = frozenset({*TEXT_TO_VIDEO_ARGUMENTS, "negative_prompt", "return_dict"})
"""Pipeline ``__call__`` arguments a baseline sets from its own keys or that generation owns."""


@dataclass(frozen=True)
class BaselineModel:
    """One entry ``name: spec`` of ``generate.baselines``: a pretrained diffusers text-to-video
    pipeline (``CogVideoXPipeline``, ``EasyAnimatePipeline``, ...) that generates the test prompts
    as released, under ``results/generated/{name}/baseline``. No key has a default here: the
    schema gives them (:meth:`from_dict` refuses a spec that lacks one)."""

    name: str
    """The model's name in ``results/generated/{name}`` and in the tables."""
    pretrained: str
    """Local folder in ``save_pretrained`` layout, or a hub id (fetched into the hub cache)."""
    hub_id: str
    """Where the rule ``fetch_baseline_model`` downloads a missing local ``pretrained`` folder
    from (empty: place the folder by hand)."""
    revision: str
    num_frames: int
    height: int
    width: int
    fps: float
    """Frame rate of the written mp4 (the pipeline makes frames, not a rate)."""
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str
    device: str
    dtype: PipelineDtype
    call_kwargs: dict[str, Any]
    """Further ``__call__`` arguments of the pipeline (e.g. ``use_dynamic_cfg``); a key the
    pipeline does not take is an error when it loads."""

    def _key(self, key: str) -> str:
        return f"generate.baselines.{self.name}.{key}"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"generate.baselines.{self.name}", "a model name must be non-empty and without '/'")
        for key in ("pretrained", "hub_id", "revision", "negative_prompt", "device", "dtype"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(self._key(key), f"must be a string, got {getattr(self, key)!r}")
        for key in ("num_frames", "height", "width", "num_inference_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(self._key(key), f"must be a positive integer, got {value!r}")
        for key in ("fps", "guidance_scale"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(self._key(key), f"must be a number, got {value!r}")
        if not self.pretrained:
            raise ConfigError(self._key("pretrained"), "must name a folder or a hub id")
        if not self.revision:
            raise ConfigError(self._key("revision"), "must name a branch, tag or commit")
        if self.height % 8 or self.width % 8:
            raise ConfigError(
                self._key("height"), f"{self.height}x{self.width}: both must be multiples of 8 (the VAE's stride)"
            )
        if self.fps <= 0:
            raise ConfigError(self._key("fps"), f"must be > 0, got {self.fps}")
        if self.guidance_scale < 0:
            raise ConfigError(self._key("guidance_scale"), f"must be >= 0, got {self.guidance_scale}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(self._key("device"), f"unknown device {self.device!r} ({', '.join(DEVICES)} or cuda:N)")
        if self.dtype not in DTYPE_NAMES:
            raise ConfigError(self._key("dtype"), f"unknown dtype {self.dtype!r} ({', '.join(DTYPE_NAMES)})")
        if not isinstance(self.call_kwargs, dict):
            raise ConfigError(self._key("call_kwargs"), f"expected a mapping, got {type(self.call_kwargs).__name__}")
        for key in self.call_kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                raise ConfigError(self._key(f"call_kwargs.{key}"), "not an argument name")
            if key in RESERVED_CALL_KWARGS:
                raise ConfigError(
                    self._key(f"call_kwargs.{key}"),
                    "set by the spec's own keys or by generation itself, not by call_kwargs",
                )

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> BaselineModel:
        """The model ``name`` from its spec (every key of this class but ``name``).

        Raises:
            ConfigError: naming ``generate.baselines.<name>.<key>`` for an unknown, missing or bad key.
        """
        section = f"generate.baselines.{name}"
        if not isinstance(d, Mapping):
            raise ConfigError(section, f"expected a mapping, got {type(d).__name__}")
        known = [f.name for f in fields(cls) if f.name != "name"]
        for key in d:
            if key not in known:
                raise ConfigError(f"{section}.{key}", f"unknown key; known keys: {sorted(known)}")
        for key in known:
            if key not in d:
                raise ConfigError(f"{section}.{key}", "missing (the schema's default fills it in a workflow run)")
        spec = dict(d)
        if isinstance(spec["call_kwargs"], Mapping):
            spec["call_kwargs"] = dict(spec["call_kwargs"])
        return cls(name=str(name), **spec)

    def to_dict(self) -> dict[str, Any]:
        """The spec (without ``name``), as :meth:`from_dict` takes it."""
        d = asdict(self)
        del d["name"]
        return d


@dataclass(frozen=True)
class GenerateConfig:
    """``generate:`` in config.yaml: test-prompt videos of the baseline and each checkpoint."""

    groups: tuple[str, ...] = ("A", "B", "C")
    baseline: bool = True
    prompt_set: Literal["tav", "paper"] = "tav"
    """Which prompt files every model generates: TAV's test split or the paper's printed prompts
    (the rules pick the files; the generation code reads whichever it is given)."""
    seed: int = 42
    """Video ``i`` of every group and checkpoint uses seed ``seed + i`` (paired comparisons)."""
    weights: Literal["ema", "model"] = "ema"
    """Which weights of a checkpoint generate: the EMA copy (``model_ema``, as Open-Sora-Plan
    samples) or the raw trained weights (``model``)."""
    diffusers: DiffusersSampling = field(default_factory=DiffusersSampling)
    opensora: OpenSoraSampling = field(default_factory=OpenSoraSampling)
    baselines: dict[str, BaselineModel] = field(default_factory=dict)
    """Pretrained-only models (name -> :class:`BaselineModel`), generated by the rule
    ``generate_baseline_videos`` for the tables and figures that compare with them."""

    def __post_init__(self) -> None:
        if not self.groups:
            raise ConfigError("generate.groups", "must name at least one group")
        if self.weights not in ("ema", "model"):
            raise ConfigError("generate.weights", f"unknown value {self.weights!r} (ema or model)")
        if self.diffusers.num_inference_steps < 1 or self.opensora.num_sampling_steps < 1:
            raise ConfigError("generate", "inference steps must be >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateConfig:
        check_keys("generate", d, cls)
        d = dict(d)
        if "groups" in d:
            d["groups"] = tuple(str(g) for g in d["groups"])
        if "diffusers" in d:
            check_keys("generate.diffusers", d["diffusers"], DiffusersSampling)
            d["diffusers"] = DiffusersSampling(**d["diffusers"])
        if "opensora" in d:
            check_keys("generate.opensora", d["opensora"], OpenSoraSampling)
            osp = dict(d["opensora"])
            osp["extra_args"] = tuple(str(a) for a in osp.get("extra_args", ()))
            d["opensora"] = OpenSoraSampling(**osp)
        if "baselines" in d:
            if not isinstance(d["baselines"], Mapping):
                raise ConfigError("generate.baselines", f"expected a mapping, got {type(d['baselines']).__name__}")
            d["baselines"] = {str(n): BaselineModel.from_dict(str(n), spec) for n, spec in d["baselines"].items()}
        return cls(**d)
