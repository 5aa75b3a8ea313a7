#!/usr/bin/env bash
# One prepared GPU comparison (issue #21): build ember, time a training step and the main job
# on a GPU backend, and nanoGPT with PyTorch CUDA beside it; print one Markdown table.
#
#   benches/gpu.sh                      # wgpu on the best adapter (a GPU, else lavapipe)
#   BACKEND=wgpu-cpu benches/gpu.sh     # force Mesa lavapipe (a dry run without a GPU)
#   MAIN_JOB=0 benches/gpu.sh           # skip the 2000-step main job
#   MAIN_STEPS=20 benches/gpu.sh        # a shorter main job (a dry run end to end)
#   NANOGPT_DIR=/path/to/nanoGPT benches/gpu.sh   # add nanoGPT (needs python + torch with CUDA)
#
# Nothing is downloaded: nanoGPT must already be checked out with
# data/shakespeare_char/prepare.py run, and torch installed. Rows that cannot run say why.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND="${BACKEND:-wgpu}"
STEPS="${STEPS:-20}"
MAIN_JOB="${MAIN_JOB:-1}"
MAIN_STEPS="${MAIN_STEPS:-2000}"
CONFIG="configs/shakespeare-char.toml"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ember-target}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "gpu.sh: building (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
cargo build --release --quiet
EMBER="$CARGO_TARGET_DIR/release/ember"

rows=()
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. One training step, phase by phase, on the GPU backend and on flex (same process order).
for b in "$BACKEND" flex; do
  echo "gpu.sh: ember bench step --backend $b --steps $STEPS" >&2
  if "$EMBER" bench step "$CONFIG" --backend "$b" --steps "$STEPS" --json > "$OUT/step-$b.json" 2> "$OUT/step-$b.err"; then
    rows+=("| ember bench step ($b) | $(printf '%.1f' "$(field "$OUT/step-$b.json" step_ms)") ms/step | $(printf '%.0f' "$(field "$OUT/step-$b.json" tokens_per_s)") tok/s | — |")
  else
    rows+=("| ember bench step ($b) | failed: $(tail -1 "$OUT/step-$b.err") | | |")
  fi
done

# 2. The main job (2000 steps) on the GPU backend, timed as a whole process.
if [ "$MAIN_JOB" = "1" ]; then
  echo "gpu.sh: ember train $CONFIG --backend $BACKEND --steps $MAIN_STEPS" >&2
  start=$(date +%s.%N)
  if "$EMBER" train "$CONFIG" --backend "$BACKEND" --steps "$MAIN_STEPS" --out "$OUT/run" --quiet > "$OUT/train.log" 2>&1; then
    wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
    val=$(grep -o 'val loss [0-9.]*' "$OUT/train.log" | tail -1 | awk '{print $3}')
    rows+=("| ember train ($BACKEND, $MAIN_STEPS steps) | $wall s | — | ${val:-?} |")
  else
    rows+=("| ember train ($BACKEND) | failed: $(tail -1 "$OUT/train.log") | | |")
  fi
fi

# 3. nanoGPT, the same recipe on PyTorch CUDA.
if [ -n "${NANOGPT_DIR:-}" ]; then
  if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu.sh: nanoGPT on cuda" >&2
    start=$(date +%s.%N)
    (cd "$NANOGPT_DIR" && python3 train.py config/train_shakespeare_char.py --device=cuda --compile=False \
      --eval_iters=20 --log_interval=100 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 \
      --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 --out_dir="$OUT/nanogpt") > "$OUT/nanogpt.log" 2>&1
    wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
    val=$(grep -o 'val loss [0-9.]*' "$OUT/nanogpt.log" | tail -1 | awk '{print $3}')
    rows+=("| nanoGPT (PyTorch, cuda, 2000 iters) | $wall s | — | ${val:-?} |")
  else
    rows+=("| nanoGPT (PyTorch, cuda) | skipped: torch with CUDA not available | | |")
  fi
else
  rows+=("| nanoGPT (PyTorch, cuda) | skipped: NANOGPT_DIR not set | | |")
fi

adapter=$(grep -io 'adapter[^,]*' "$OUT/step-$BACKEND.err" 2>/dev/null | head -1 || true)
echo
echo "Device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi') ${adapter:+($adapter)}; $(nproc) CPU cores; $(date -u +%F)"
echo
echo "| run | time | throughput | val loss |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
