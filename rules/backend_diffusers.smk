# The diffusers backend's own rules (included by train.smk when train.backend is diffusers): the
# pipeline's download, and the text and VAE latents its training reads, cached once.


if to_fetch("fetch_diffusers_model"):

    rule fetch_diffusers_model:
        output:
            directory(to_fetch("fetch_diffusers_model")[0]),
        params:
            hub_id=TRAIN["diffusers"]["hub_id"],
            revision=TRAIN["diffusers"]["revision"],
        resources:
            downloads=1,
        log:
            log_path("fetch_diffusers_model"),
        conda:
            f"{ENVS}/train-diffusers.yaml"
        script:
            "../scripts/fetch_diffusers_model.py"


rule cache_latents:
    input:
        tav=R("tav.json"),
        model=asset(TRAIN["diffusers"]["pretrained"]),
    output:
        directory(R("latents/{model}")),
    params:
        train=TT.caching_settings(TRAIN),
    wildcard_constraints:
        model=TRAIN_MODEL,
    # torch CPU threads: the work is on the GPU (and on a 2-core machine one thread is faster)
    threads: 1
    resources:
        gpu=1,
    log:
        log_path("cache_latents", "{model}"),
    benchmark:
        R("benchmarks/cache_latents/{model}.tsv")
    conda:
        f"{ENVS}/train-diffusers.yaml"
    script:
        "../scripts/cache_latents.py"
