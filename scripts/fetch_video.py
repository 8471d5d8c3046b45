"""Rule fetch_video (params: the source settings that shape the video; the retry settings from
the config, since changing them must not refetch every video)."""
from tav_pipeline import logs, steps

retry = {k: snakemake.config["source"][k] for k in ("retries", "rate_limit_sleep")}
with logs.to_file(snakemake.log[0]):
    steps.fetch_video_step(snakemake.input.sample, snakemake.wildcards.video, {**snakemake.params.source, **retry}, snakemake.output[0])
