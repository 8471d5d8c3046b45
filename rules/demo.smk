# Demo assets (profiles/demo): the miniature world's corpus, the captioner and the base model.


rule build_demo_corpus:
    output:
        metadata=R("demo/panda70m_demo.csv"),
        truth=R("demo/truth.json"),
        videos=directory(R("demo/videos")),
    params:
        demo={k: v for k, v in config["demo"].items() if k != "pretrain"},
    log:
        log_path("build_demo_corpus"),
    conda:
        f"{ENVS}/video.yaml"
    script:
        "../scripts/build_demo_corpus.py"


# The captioner: a tiny BLIP trained on keyframes of the world with their true captions (a minute or
# two on 2 CPU cores); its held-out caption accuracy is written to demo/blip/world_accuracy.json.
rule build_demo_blip:
    output:
        directory(R("demo/blip")),
    params:
        seed=config["demo"]["seed"],
        captions=config["captions"],
    log:
        log_path("build_demo_blip"),
    conda:
        f"{ENVS}/captions.yaml"
    script:
        "../scripts/build_demo_blip.py"


rule build_tiny_cogvideox:
    output:
        directory(R("demo/tiny_cogvideox")),
    params:
        seed=config["demo"]["seed"],
    log:
        log_path("build_tiny_cogvideox"),
    conda:
        f"{ENVS}/train-diffusers.yaml"
    script:
        "../scripts/build_tiny_cogvideox.py"


# The base model pretrained on single-scene clips of the world (tav_pipeline.demo.pretrain): VAE,
# then transformer, from scratch. Settings: demo.pretrain (PretrainConfig's fields; empty: its
# defaults). Reproduce: snakemake --profile profiles/demo results/demo/tiny_cogvideox_world
rule pretrain_demo_cogvideox:
    output:
        directory(R("demo/tiny_cogvideox_world")),
    params:
        seed=config["demo"]["seed"],
        pretrain=config["demo"]["pretrain"],
    log:
        log_path("pretrain_demo_cogvideox"),
    conda:
        f"{ENVS}/train-diffusers.yaml"
    script:
        "../scripts/pretrain_demo_cogvideox.py"
