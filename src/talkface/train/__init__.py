"""Training: synthetic corpus, datasets, network, loop, ONNX export and evaluation.

Needs the `train` extra (torch, pyyaml, tqdm, scipy); the runtime never imports this package.
"""
