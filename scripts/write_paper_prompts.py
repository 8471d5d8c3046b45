"""Rule write_paper_prompts: the paper's printed test prompts of one group, one per line."""
from tav_pipeline import logs
from tav_pipeline.tables import write_paper_prompts

with logs.to_file(snakemake.log[0]):
    write_paper_prompts(snakemake.wildcards.group, snakemake.output[0])
