# Test-prompt videos (paper sections 4-5): results/generated/{model}/{checkpoint}/{group}/{i}.mp4
# (+ prompts.json) for the baseline and every epoch of train.epochs, groups A/B/C. One job per
# (model, checkpoint) loads the model once and writes every group. Include after train.smk.
# Targets: TT.checkpoint_targets(RESULTS, TRAIN) and TT.generated_targets(RESULTS, TRAIN, GEN).
GEN = config["generate"]
GEN_GROUPS = [str(g) for g in GEN["groups"]]


rule generate_videos:
    input:
        prompts=[R(f"prompts/{g}.txt") for g in GEN_GROUPS],
        checkpoint=lambda wc: TT.checkpoint_input(RESULTS, wc.model, wc.checkpoint),
        model=TT.model_inputs(TRAIN),
    output:
        **{
            g: report(
                directory(R(f"generated/{{model}}/{{checkpoint}}/{g}")),
                patterns=["{i}.mp4"],
                category="Generated videos",
                subcategory="{model}",
                labels={"checkpoint": "{checkpoint}", "group": g, "video": "{i}"},
            )
            for g in GEN_GROUPS
        },
    params:
        groups=GEN_GROUPS,
        train=TT.settings_beside_training(TRAIN),
        generate=GEN,
        work=lambda wc: R(f"generated/{wc.model}/{wc.checkpoint}/.work"),
    wildcard_constraints:
        model=TRAIN_MODEL,
        checkpoint=r"baseline|epoch_\d+",
    threads: 1
    resources:
        gpu=1,
    log:
        log_path("generate_videos", "{model}/{checkpoint}"),
    benchmark:
        R("benchmarks/generate_videos/{model}/{checkpoint}.tsv")
    conda:
        f"{ENVS}/train-opensora.yaml" if TRAIN["backend"] == "opensora" else f"{ENVS}/train-diffusers.yaml"
    script:
        "../scripts/generate_videos.py"
