#!/usr/bin/env python3
"""nanoGPT's own validation loss on exactly the windows `ember eval` scores (run by hand).

    /work/pyenv/bin/python benches/nanogpt_eval_windows.py NANOGPT_DIR CKPT [--context T]

Loads CKPT with nanoGPT's own `model.py` from the nanoGPT checkout NANOGPT_DIR (imported
from there, not copied), reads the validation ids nanoGPT's prepare.py wrote
(`data/<dataset>/val.bin`) and scores every target once with non-overlapping windows of
`block_size` tokens (the last window shorter), as `ember eval RUN` does on the imported run.
Prints the mean cross-entropy; compare with `ember eval` (BENCHMARKS.md, "nanoGPT import").
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("nanogpt_dir")
p.add_argument("ckpt")
p.add_argument("--context", type=int, default=None)
a = p.parse_args()
sys.path.insert(0, a.nanogpt_dir)
from model import GPT, GPTConfig  # noqa: E402  (nanoGPT's own model)

ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
model = GPT(GPTConfig(**ck["model_args"]))
model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ck["model"].items()})
model.eval()
val = np.fromfile(os.path.join(a.nanogpt_dir, "data", ck["config"]["dataset"], "val.bin"), dtype=np.uint16).astype(np.int64)
t = a.context or ck["model_args"]["block_size"]
n_targets = len(val) - 1
total, count = 0.0, 0
with torch.no_grad():
    for begin in range(0, n_targets, t):
        end = min(begin + t, n_targets)
        x = torch.from_numpy(val[begin:end])[None]
        y = torch.from_numpy(val[begin + 1:end + 1])[None]
        logits, _ = model(x, y)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        count += end - begin
print(f"{count} targets, context {t}: nanoGPT loss {total / count:.4f} (checkpoint iter {ck['iter_num']}, its best_val_loss {float(ck['best_val_loss']):.4f})")
