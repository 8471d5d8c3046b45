#!/usr/bin/env bash
# Installed after the env (Snakemake runs <env>.post-deploy.sh): packages whose declared
# dependencies would pull in transformers==4.33.2, numpy<2, bitsandbytes, datasets, ...
set -euo pipefail
python -m pip install --no-deps vbench==0.1.5 pyiqa==0.1.16 openai-clip==1.0.1
