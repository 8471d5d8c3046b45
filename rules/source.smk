# Source data: the Panda-70M metadata and videos, or the embedded demo corpus.


ruleorder: build_demo_corpus > fetch_metadata


rule build_demo_corpus:
    output:
        metadata=R("demo/panda70m_demo.csv"),
        truth=R("demo/truth.json"),
        videos=directory(R("demo/videos")),
    params:
        demo=config["demo"],
    log:
        log_path("build_demo_corpus"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/build_demo_corpus.py"


rule build_demo_blip:
    output:
        directory(R("demo/blip")),
    params:
        seed=config["demo"]["seed"],
    log:
        log_path("build_demo_blip"),
    conda:
        f"{ENVS}/captions.yaml"
    script:
        "../scripts/build_demo_blip.py"


rule fetch_metadata:
    output:
        config["source"]["metadata_csv"],
    params:
        url=config["source"]["metadata_url"],
    log:
        log_path("fetch_metadata"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/fetch_metadata.py"


rule fetch_blip:
    output:
        directory("resources/models/{model}"),
    params:
        hub_id=config["captions"]["hub_id"],
        revision=config["captions"]["revision"],
    log:
        log_path("fetch_blip", "{model}"),
    conda:
        f"{ENVS}/captions.yaml"
    script:
        "../scripts/fetch_blip.py"


rule fetch_video:
    input:
        sample=R("sample.csv"),
    output:
        R("videos/{video}.json"),
    params:
        source=config["source"],
    resources:
        downloads=1,
    log:
        log_path("fetch_video", "{video}"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/fetch_video.py"
