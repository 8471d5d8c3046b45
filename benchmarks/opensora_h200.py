"""Open-Sora-Plan v1.3.1's own trainer and sampler, driven by the pipeline's step functions, on a GPU.

Builds random weights in the real formats (``opensora_real.py``), trains epochs 1 and 2 at the
paper's shape (33x256x256, bf16, ZeRO-2, EMA, gradient checkpointing) through
``train_opensora_step`` (epoch 2 is a second job: a relaunch resuming ``latest``, the epoch-1 folder
linked in), samples two prompts from epoch 2's ``model_ema`` through ``sample_opensora_step``, and
writes ``measurement.json``: seconds per step (from the trainer's own tensorboard scalars, one per
step, with their wall times), peak GPU memory (``nvidia-smi`` sampled every 100 ms, per phase),
timings and versions. The step functions' log goes to ``run.log``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("opensora_h200")


class GpuMemory:
    """``nvidia-smi`` memory.used (MiB) every 100 ms, tagged with the current phase."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False,
            ).stdout.split()
            if out:
                used = max(int(x) for x in out)
                self.peak[self.phase] = max(self.peak.get(self.phase, 0), used)
            time.sleep(0.1)

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


STEP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \| Steps:\s+\d+%\|[^|]*\| (\d+)/(\d+) ")


def step_times(log_file: Path) -> list[dict[str, Any]]:
    """When each optimizer step finished: the first time the trainer's ``Steps: k/N`` progress line
    reached ``k`` (``run_logged`` stamps every line it reads; tqdm prints at each update)."""
    from datetime import datetime

    rows: list[dict[str, Any]] = []
    seen = set()
    for line in log_file.read_text(errors="replace").splitlines():
        m = STEP_LINE.match(line)
        if m and (int(m.group(2)), int(m.group(3))) not in seen:
            seen.add((int(m.group(2)), int(m.group(3))))
            wall = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            rows.append({"step": int(m.group(2)), "of": int(m.group(3)), "wall": wall})
    return rows


def per_step(rows: list[dict[str, Any]]) -> list[float]:
    """Seconds between consecutive steps of one launch, leaving out each launch's first step (it
    starts the data loader workers and warms up kernels)."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        if a["of"] == b["of"] and b["step"] == a["step"] + 1 and a["step"] > min(r["step"] for r in rows if r["of"] == a["of"]):
            out.append(round(b["wall"] - a["wall"], 3))
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "tokenizers", "huggingface_hub", "diffusers", "accelerate", "deepspeed",
                 "decord", "imageio", "imageio-ffmpeg", "numpy", "sentencepiece", "safetensors", "pydantic", "av"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    import torch

    out["cuda"] = str(torch.version.cuda)
    out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return out


def main() -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--osp", type=Path, required=True, help="Open-Sora-Plan v1.3.1 source")
    p.add_argument("--data", type=Path, required=True, help="clips/, tav_train.json, spiece.model")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--models", type=Path, default=None, help="where the weights go (default: WORK/models)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epoch-steps", type=int, default=4)
    p.add_argument("--sampling-steps", type=int, default=0, help="0: the config's default")
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.FileHandler(a.out / "run.log"), logging.StreamHandler(sys.stdout)],
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(a.osp.resolve()))
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    result: dict[str, Any] = {"versions": versions(), "phases": {}, "ok": False}
    gpu = "cuda" if not a.tiny else "cpu"

    def dump() -> None:
        (a.out / "measurement.json").write_text(json.dumps(result, indent=2, default=str) + "\n")

    try:
        with GpuMemory() as mem:
            import opensora_real

            from tav_pipeline.backends.opensora import sample as sampler
            from tav_pipeline.backends.opensora import train as trainer

            t0 = time.time()
            weights = opensora_real.build_all(a.models or a.work / "models", a.data / "spiece.model", tiny=a.tiny, device=gpu)
            result["weights"] = {k: v for k, v in weights.items() if k in ("transformer", "vae", "text_encoder")}
            result["phases"]["build_weights_s"] = round(time.time() - t0, 1)
            (a.work / "data.txt").write_text(f"{(a.data / 'clips').resolve()},{(a.data / 'tav_train.json').resolve()}\n")
            train = {
                "model": "opensora_plan", "epochs": [1, 2], "epoch_steps": a.epoch_steps,
                "opensora": {
                    "repo": str(a.osp.resolve()), "check_commit": False, "pretrained": weights["pretrained"],
                    "ae_path": weights["ae_path"], "cache_dir": weights["cache_dir"], "relaunch": "per_epoch",
                },
            }
            if a.tiny:
                train.update(mixed_precision="no", distributed="plain")
            ckpts = a.work / "checkpoints"
            for epoch, previous in ((1, None), (2, ckpts / "epoch_1")):
                mem.phase = f"train_epoch_{epoch}"
                t0 = time.time()
                state = trainer.train_opensora_step(a.work / "data.txt", previous, ckpts / f"epoch_{epoch}", a.work / f"job{epoch}", train, epoch)
                result["phases"][f"train_epoch_{epoch}_s"] = round(time.time() - t0, 1)
                result[f"state_epoch_{epoch}"] = {k: getattr(state, k) for k in ("epoch", "global_step", "steps_per_epoch", "usable_clips", "resumed_from")}
                result["peak_gpu_memory_mib"] = dict(mem.peak)
                rows = step_times(a.out / "run.log")
                result["steps"] = rows
                dts = per_step(rows)
                result["seconds_per_step"] = {"all": dts, "median": statistics.median(dts) if dts else None}
                dump()
            mem.phase = "sample"
            prompts = a.work / "prompts" / "A.txt"
            prompts.parent.mkdir(parents=True, exist_ok=True)
            prompts.write_text("a dog runs in the snow\nPrevious scene: a red kite over a beach; Next scene: a kettle on a stove\n")
            generate = {"opensora": {"num_sampling_steps": a.sampling_steps}} if a.sampling_steps else {}
            t0 = time.time()
            videos = sampler.sample_opensora_step(ckpts / "epoch_2", {"A": prompts}, {"A": a.work / "generated" / "A"}, a.work / "sample", train, generate, "epoch_2")
            result["phases"]["sample_s"] = round(time.time() - t0, 1)
            result["videos"] = [str(v) for v in videos["A"]]
            for v in videos["A"]:
                shutil.copy(v, a.out / f"A_{v.name}")
            shutil.copy(a.work / "generated" / "A" / "prompts.json", a.out / "A_prompts.json")
            result["epoch_2_files"] = sorted(str(x.relative_to(ckpts)) for x in (ckpts / "epoch_2").rglob("*") if x.is_file())[:60]
            result["ok"] = True
        result["peak_gpu_memory_mib"] = mem.peak
    except Exception:
        result["error"] = traceback.format_exc()
        log.error("%s", result["error"])
        try:
            result["peak_gpu_memory_mib"] = mem.peak
        except NameError:
            pass
    dump()
    log.info("RESULT %s", json.dumps({k: result.get(k) for k in ("ok", "phases", "peak_gpu_memory_mib")}))
    if result.get("seconds_per_step"):
        log.info("s/step median %s", result["seconds_per_step"]["median"])


if __name__ == "__main__":
    main()
