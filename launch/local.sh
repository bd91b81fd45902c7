#!/usr/bin/env bash
# The CPU smoke run: an experiment (default: the headline, gin/reciprocal.gin) with the CPU layer
# gin/local.gin on the embedded dataset, trained and evaluated on this machine.
#
#   launch/local.sh                                    # ~3 minutes on 2 cores
#   LOCAL_EXPERIMENT=gin/experiments/gru_shallow.gin launch/local.sh --gin_param=train.train_steps=50
#
# Settings: LOCAL_EXPERIMENT (gin file), LOCAL_MODEL_DIR (default runs/local); every further
# argument goes to `python -m tpu_convrnn.main` (later flags win; --gin_param adds bindings).
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
experiment=${LOCAL_EXPERIMENT:-gin/reciprocal.gin}
model_dir=${LOCAL_MODEL_DIR:-runs/local}
exec "${PYTHON:-python}" -m tpu_convrnn.main --gin_file="$experiment" --gin_file=gin/local.gin \
  --mode=train_and_eval --model_dir="$model_dir" "$@"
