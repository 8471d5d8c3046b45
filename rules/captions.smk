# One keyframe per scene and one BLIP caption per keyframe (paper section 3), for validated
# clips only.


rule extract_keyframes:
    input:
        clip=R("clips/{video}.mp4"),
        meta=R("clips/{video}.json"),
        validation=R("validation/{video}.json"),
    output:
        frames=directory(R("keyframes/{video}")),  # scene1.png, scene2.png; empty when rejected
        meta=R("keyframes/{video}.json"),
    params:
        keyframes=config["keyframes"],
    log:
        log_path("extract_keyframes", "{video}"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/extract_keyframes.py"


rule caption_scenes:
    input:
        model=caption_model(),
        keyframes=lambda wc: per_video(R("keyframes/{video}.json"), clip_videos()),
        validation=lambda wc: per_video(R("validation/{video}.json"), clip_videos()),
    output:
        R("captions.jsonl"),
    params:
        captions=config["captions"],
    threads: 2
    resources:
        gpu=1,
    log:
        log_path("caption_scenes"),
    benchmark:
        R("benchmarks/caption_scenes.tsv")
    conda:
        f"{ENVS}/captions.yaml"
    script:
        "../scripts/caption_scenes.py"
