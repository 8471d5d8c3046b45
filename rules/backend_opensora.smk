# The Open-Sora-Plan backend's own rules (included by train.smk when train.backend is opensora):
# the pinned checkout and the weights. Its training data is build_tav's export (dataset.smk).


if to_fetch("fetch_opensora"):

    rule fetch_opensora:
        output:
            directory(to_fetch("fetch_opensora")[0]),
        params:
            git_url=TRAIN["opensora"]["git_url"],
            commit=TRAIN["opensora"]["commit"],
        resources:
            downloads=1,
        log:
            log_path("fetch_opensora"),
        conda:
            f"{ENVS}/train-opensora.yaml"
        script:
            "../scripts/fetch_opensora.py"


if to_fetch("fetch_opensora_weights"):

    rule fetch_opensora_weights:
        output:
            [directory(p) for p in to_fetch("fetch_opensora_weights")],
        params:
            train=TRAIN,
        resources:
            downloads=1,
        log:
            log_path("fetch_opensora_weights"),
        conda:
            f"{ENVS}/train-opensora.yaml"
        script:
            "../scripts/fetch_opensora_weights.py"
