"""Rule build_tav."""
from pathlib import Path

from tav_pipeline import logs, steps

with logs.to_file(snakemake.log[0]):
    steps.build_tav_step(
        snakemake.input.captions,
        snakemake.input.clips,
        snakemake.input.validation,
        snakemake.params.dataset,
        snakemake.params.caption_model,
        snakemake.output.tav,
        Path(snakemake.output.prompts[0]).parent,
        Path(snakemake.output.osp_data).parent,
    )
