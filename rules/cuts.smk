# The scene-cut detector, one record per video (paper section 3). A checkpoint: which videos get
# a clip is known only once their cuts are.


checkpoint detect_cuts:
    input:
        fetched=R("videos/{video}.json"),
    output:
        R("cuts/{video}.json"),
    params:
        cuts=config["cuts"],
    threads: 2
    log:
        log_path("detect_cuts", "{video}"),
    benchmark:
        R("benchmarks/detect_cuts/{video}.tsv")
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/detect_cuts.py"
