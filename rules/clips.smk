# Clips around the first cut, their validation, and the rejects table. A per-video step never
# fails the run on a bad video: it writes its record with "status: rejected" and a reason (a
# rejected clip leaves an empty placeholder mp4), and collect_rejects lists it with the stage.


rule extract_clip:
    input:
        cuts=R("cuts/{video}.json"),
    output:
        clip=R("clips/{video}.mp4"),
        meta=R("clips/{video}.json"),
    params:
        clips=config["clips"],
    threads: 2
    log:
        log_path("extract_clip", "{video}"),
    benchmark:
        R("benchmarks/extract_clip/{video}.tsv")
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/extract_clip.py"


# Only clips that pass get keyframes and captions: extract_keyframes reads this record and takes no
# frame from a clip that failed. (Not a checkpoint: a second checkpoint level under detect_cuts
# made Snakemake 9.27 drop the keyframe, caption and dataset jobs of a video rerun after a change
# while still rerunning the training downstream of them.)
rule validate_clip:
    input:
        clip=R("clips/{video}.mp4"),
        meta=R("clips/{video}.json"),
    output:
        R("validation/{video}.json"),
    params:
        validation=config["validation"],
        cuts=config["cuts"],
    threads: 1
    log:
        log_path("validate_clip", "{video}"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/validate_clip.py"


rule collect_rejects:
    input:
        fetched=lambda wc: per_video(R("videos/{video}.json"), sampled_videos()),
        cuts=lambda wc: per_video(R("cuts/{video}.json"), sampled_videos()),
        clips=lambda wc: per_video(R("clips/{video}.json"), clip_videos()),
        validation=lambda wc: per_video(R("validation/{video}.json"), clip_videos()),
        keyframes=lambda wc: per_video(R("keyframes/{video}.json"), clip_videos()),
    output:
        rejects=report(R("rejects.csv"), caption="report/rejects.rst", category="Data"),
        failures=R("fetch_failures.csv"),
    params:
        clips=config["clips"],
    log:
        log_path("collect_rejects"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/collect_rejects.py"
