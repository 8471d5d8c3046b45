# Source data: the Panda-70M metadata and videos, or the embedded demo corpus.


# Fetch rules exist only for assets missing when the workflow is parsed, and own only those paths
# (common.smk, to_fetch): a file or folder a user placed is never an output, so never rerun,
# overwritten or deleted.
if to_fetch("fetch_metadata"):

    rule fetch_metadata:
        output:
            to_fetch("fetch_metadata"),
        params:
            url=config["source"]["metadata_url"],
        resources:
            downloads=1,
        log:
            log_path("fetch_metadata"),
        conda:
            f"{ENVS}/video.yaml"
        script:
            "../scripts/fetch_metadata.py"


if to_fetch("fetch_blip"):

    rule fetch_blip:
        output:
            directory(to_fetch("fetch_blip")[0]),
        params:
            hub_id=config["captions"]["hub_id"],
            revision=config["captions"]["revision"],
        resources:
            downloads=1,
        log:
            log_path("fetch_blip"),
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
        # retries and rate_limit_sleep reach the script from the config: they change no video
        source=video_settings(config["source"]),
    resources:
        downloads=1,
    log:
        log_path("fetch_video", "{video}"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/fetch_video.py"
