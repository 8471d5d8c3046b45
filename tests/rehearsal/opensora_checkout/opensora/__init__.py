"""STAND-IN FOR TESTS: not Open-Sora-Plan. A tiny package laid out like Open-Sora-Plan v1.3.1's
checkout (``opensora/train/train_t2v_diffusers.py``, ``opensora/sample/sample.py``) whose trainer
and sampler take the same flags, read the same files and write the same outputs on a CPU in
seconds. Copied into place by ``tests/rehearsal/opensora_standin.py``."""
