"""Rule build_demo_corpus."""
from tav_pipeline import demo, logs

with logs.to_file(snakemake.log[0]):
    demo.build_corpus(
        snakemake.output.videos,
        snakemake.output.metadata,
        snakemake.output.truth,
        demo.DemoConfig.from_dict(snakemake.params.demo),
    )
