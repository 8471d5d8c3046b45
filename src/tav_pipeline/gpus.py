"""One GPU job, its own GPUs: each GPU rule's script claims ``resources.gpu`` devices before
anything initialises CUDA, and the job (and every process it starts) then sees only those.

Snakemake counts ``--resources gpu=N`` but assigns no device, so without a claim every job of a
workstation run would work on the first GPU. :func:`claim` takes ``count`` devices from the ones
this process may see (``CUDA_VISIBLE_DEVICES`` when set, else the GPUs ``nvidia-smi -L`` lists;
none: a CPU machine, nothing to do), holds an exclusive ``fcntl.flock`` on one lock file per device
in a folder local to the machine, and sets ``CUDA_VISIBLE_DEVICES`` to the claimed ones. The locks
belong to the process: they go when it exits, crashed or not, so nothing is left to clean up.
A claim takes all its devices or none; when too few are free (another workflow run, or more
``--resources gpu`` than cards) it waits, logging who holds them.

Settings (environment variables):

- ``TAV_GPU_ASSIGN``: ``auto`` (default): claim, except inside a SLURM job (``SLURM_JOB_ID`` set),
  whose ``CUDA_VISIBLE_DEVICES`` the scheduler chose and numbers from 0 in every job; ``on``:
  claim also under SLURM (one ``salloc`` running a local Snakemake over its GPUs); ``off``: keep
  what the job was given.
- ``TAV_GPU_JOBS_PER_GPU``: jobs that may share one device (default 1: none share).
- ``TAV_GPU_LOCK_DIR``: the lock folder (default ``<tmp>/tav-pipeline-gpus-<uid>``, so every run
  of the user on this machine sees the others' claims). It must be local to the machine: device
  numbers name other cards on another host.
- ``TAV_GPU_WAIT_S``: give up with :class:`GpuClaimError` after this many seconds of waiting
  (default: wait as long as it takes).
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import IO

from tav_pipeline.errors import GpuClaimError

log = logging.getLogger(__name__)

ASSIGN_VAR = "TAV_GPU_ASSIGN"
JOBS_PER_GPU_VAR = "TAV_GPU_JOBS_PER_GPU"
LOCK_DIR_VAR = "TAV_GPU_LOCK_DIR"
WAIT_VAR = "TAV_GPU_WAIT_S"
POLL_S = 2.0
"""Seconds between two attempts while waiting for free devices."""
REPORT_EVERY_S = 600.0
"""While waiting, say again who holds the devices this often."""

_held: list[IO[str]] = []
_claimed: list[str] | None = None


def parse_nvidia_smi(listing: str) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` names of the devices in ``nvidia-smi -L`` output: the index of
    each GPU, or the UUIDs of its MIG instances when it is partitioned (CUDA then sees only those)."""
    devices: list[str] = []
    current: str | None = None
    migs: list[str] = []
    for line in listing.splitlines():
        gpu = re.match(r"GPU (\d+):", line.strip())
        mig = re.search(r"\(UUID: (MIG-[^)\s]+)\)", line)
        if gpu and not line[:1].isspace():
            if current is not None:
                devices.extend(migs or [current])
            current, migs = gpu.group(1), []
        elif mig and current is not None:
            migs.append(mig.group(1))
    if current is not None:
        devices.extend(migs or [current])
    return devices


def nvidia_smi_devices() -> list[str]:
    """The devices ``nvidia-smi -L`` lists (none without ``nvidia-smi``: a CPU machine)."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return []
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi -L failed (%s); running without GPUs", exc)
        return []
    if done.returncode != 0:
        log.warning("nvidia-smi -L exited %d (%s); running without GPUs", done.returncode, done.stderr.strip())
        return []
    return parse_nvidia_smi(done.stdout)


def parse_visible(value: str) -> list[str]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value names; as CUDA does, the list ends at the first
    negative number (``-1``: no device)."""
    devices: list[str] = []
    for token in (t.strip() for t in value.split(",")):
        if not token:
            continue
        if re.fullmatch(r"-\d+", token):
            break
        devices.append(token)
    return devices


def _number(environ: MutableMapping[str, str], name: str, lowest: float) -> float | None:
    """The number an environment variable holds, ``None`` when unset or empty."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise GpuClaimError(f"{name}={raw!r} is not a number") from None
    if value < lowest:
        raise GpuClaimError(f"{name}={raw!r}: at least {lowest:g}")
    return value


def lock_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """The folder of the per-device lock files."""
    env = os.environ if environ is None else environ
    given = env.get(LOCK_DIR_VAR, "").strip()
    return Path(given) if given else Path(tempfile.gettempdir()) / f"tav-pipeline-gpus-{os.getuid()}"


def _cuda_initialised() -> bool:
    """Whether this process already initialised CUDA, after which ``CUDA_VISIBLE_DEVICES`` no
    longer changes what it sees (torch's lazy init, or any library's ``cuInit``)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return True
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    # before cuInit every driver call but cuInit answers CUDA_ERROR_NOT_INITIALIZED (3)
    return int(libcuda.cuDeviceGetCount(ctypes.byref(count))) != 3


def _lock_name(device: str, slot: int | str) -> str:
    """``<device>.<slot>.lock``; a MIG UUID's other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device) + f".{slot}.lock"


def _try_take(devices: Sequence[str], count: int, slots: int, folder: Path, owner: str) -> list[tuple[str, IO[str]]]:
    """Lock one free slot on each of ``count`` devices, lowest first; all of them or none."""
    taken: list[tuple[str, IO[str]]] = []
    for device in devices:
        for slot in range(slots):
            handle = open(folder / _lock_name(device, slot), "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(owner)
            handle.flush()
            taken.append((device, handle))
            break
        if len(taken) == count:
            return taken
    for _, held in taken:
        held.close()  # closing the last descriptor releases its lock
    return []


def holders(devices: Sequence[str], folder: Path) -> list[str]:
    """Who holds the given devices now (``device: rule pid N``), from the lock files."""
    found = []
    for device in devices:
        for path in sorted(folder.glob(_lock_name(device, "*"))):
            with open(path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    found.append(f"{device}: {handle.read().strip() or 'unknown'}")
                else:
                    fcntl.flock(handle, fcntl.LOCK_UN)
    return found


def claim(
    count: int, rule: str = "job", *, environ: MutableMapping[str, str] | None = None, poll_s: float = POLL_S
) -> list[str] | None:
    """Give this job ``count`` GPUs of its own and set ``CUDA_VISIBLE_DEVICES`` to them, for this
    process and every process it starts. Call it before anything initialises CUDA; the devices
    stay claimed until the process exits. A second call returns the first call's devices.

    Returns the claimed devices (as ``CUDA_VISIBLE_DEVICES`` now names them), or ``None`` when the
    job keeps what it was given: ``count`` 0, no GPU at all (the job runs on the CPU), inside a
    SLURM job, or ``TAV_GPU_ASSIGN=off``.

    Raises:
        GpuClaimError: ``count`` exceeds the devices this process may see (naming the rule's
            ``resources: gpu``), a bad ``TAV_GPU_*`` value, ``TAV_GPU_WAIT_S`` ran out, or CUDA
            was initialised before the claim.
    """
    global _claimed
    env = os.environ if environ is None else environ
    if _claimed is not None:
        return list(_claimed)
    mode = env.get(ASSIGN_VAR, "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise GpuClaimError(f"{ASSIGN_VAR}={mode!r}: expected auto, on or off")
    given = env.get("CUDA_VISIBLE_DEVICES")
    if count <= 0:
        return None
    if mode == "off" or (mode == "auto" and env.get("SLURM_JOB_ID")):
        why = f"{ASSIGN_VAR}=off" if mode == "off" else f"SLURM job {env['SLURM_JOB_ID']}"
        log.info("rule %s: %s, keeping CUDA_VISIBLE_DEVICES=%s", rule, why, given if given is not None else "(unset)")
        return None
    devices = parse_visible(given) if given is not None else nvidia_smi_devices()
    source = f"CUDA_VISIBLE_DEVICES={given}" if given is not None else "nvidia-smi -L"
    if not devices:
        log.info("rule %s: no GPU (%s); running on the CPU", rule, source)
        return None
    if count > len(devices):
        raise GpuClaimError(
            f"rule {rule} asks for {count} GPU(s) (resources: gpu={count}; for the training rules that is "
            f"train.num_gpus) but only {len(devices)} are visible ({source})"
        )
    if _cuda_initialised():
        raise GpuClaimError(
            f"rule {rule}: CUDA was initialised before the GPU claim, so CUDA_VISIBLE_DEVICES can no longer "
            "change the devices this job uses; call tav_pipeline.gpus.claim before anything touches CUDA"
        )
    slots = int(_number(env, JOBS_PER_GPU_VAR, 1) or 1)
    wait_s = _number(env, WAIT_VAR, 0)
    folder = lock_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    owner = f"rule {rule} pid {os.getpid()}"
    start = last_report = time.monotonic()
    waited = False
    while not (taken := _try_take(devices, count, slots, folder, owner)):
        now = time.monotonic()
        if not waited or now - last_report >= REPORT_EVERY_S:
            log.info(
                "rule %s: waiting for %d free GPU(s) of %s; held: %s",
                rule, count, ",".join(devices), "; ".join(holders(devices, folder)) or "none",
            )
            waited, last_report = True, now
        if wait_s is not None and now - start >= wait_s:
            raise GpuClaimError(
                f"rule {rule}: no {count} free GPU(s) of {','.join(devices)} after {wait_s:g} s ({WAIT_VAR}); "
                f"held: {'; '.join(holders(devices, folder)) or 'none'}"
            )
        time.sleep(poll_s)
    _held.extend(handle for _, handle in taken)
    _claimed = [device for device, _ in taken]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(_claimed)
    if given is None:
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # so that index i is nvidia-smi's GPU i
    log.info(
        "rule %s: GPU(s) %s of %s (CUDA_VISIBLE_DEVICES=%s; locks in %s)",
        rule, ",".join(_claimed), ",".join(devices), env["CUDA_VISIBLE_DEVICES"], folder,
    )
    return list(_claimed)


def release() -> None:
    """Give the claimed devices back before the process exits (``CUDA_VISIBLE_DEVICES`` stays)."""
    global _claimed
    while _held:
        _held.pop().close()
    _claimed = None
