# The stratified sample of Panda-70M's validation split (paper section 3).


checkpoint sample_videos:
    input:
        metadata=asset(config["source"]["metadata_csv"]),
    output:
        sample=R("sample.csv"),
        shares=report(
            R("sample_categories.csv"),
            caption="report/sample_categories.rst",
            category="Data",
        ),
    params:
        sample=config["sample"],
    log:
        log_path("sample_videos"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/sample_videos.py"
