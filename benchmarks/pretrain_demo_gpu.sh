#!/usr/bin/env bash
# The demo's base model (rule pretrain_demo_cogvideox) pretrained on one GPU: the settings below are
# the demo profile's demo.pretrain. Run on a machine with torch + CUDA and diffusers/transformers:
#   OUT=/some/folder bash benchmarks/pretrain_demo_gpu.sh
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
python3 - <<'PY'
import json, logging, os, platform, time
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
import torch, diffusers, transformers
from tav_pipeline.demo.pretrain import PretrainConfig, pretrain_cogvideox
settings = json.loads(os.environ.get("PRETRAIN", "{}"))
cfg = PretrainConfig(**{"device": "cuda", **settings})
t = time.time()
report = pretrain_cogvideox(os.path.join(os.environ["OUT"], "tiny_cogvideox_world"), cfg)
report["wall_seconds"] = round(time.time() - t, 1)
report["machine"] = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor(), "torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()}
print(json.dumps({k: v for k, v in report.items()}, indent=1))
PY
