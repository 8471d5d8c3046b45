# The TAV dataset: merged prompts, the split, test prompts for groups A/B/C and the
# Open-Sora-Plan training export.


rule build_tav:
    input:
        captions=R("captions.jsonl"),
        clips=lambda wc: per_video(R("clips/{video}.json"), clip_videos()),
        validation=lambda wc: per_video(R("validation/{video}.json"), clip_videos()),
    output:
        tav=report(R("tav.json"), caption="report/tav.rst", category="Data"),
        prompts=expand(R("prompts/{group}.txt"), group=["A", "B", "C"]),
        osp_data=R("opensora/data.txt"),
        osp_annotation=R("opensora/tav_train.json"),
    params:
        dataset=config["dataset"],
        caption_model=config["captions"]["model"],
    log:
        log_path("build_tav"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/build_tav.py"
