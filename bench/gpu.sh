#!/usr/bin/env bash
# The GPU benchmark session of bench/RESULTS.md, as one script for a lent machine that has JAX
# but no TensorFlow (keras and its small dependencies installed from wheels in .whl/ if present).
#
#   bash bench/gpu.sh [OUT_DIR] [BUDGET_SECONDS] [full|probe|legacy_cudnn]
#
# OUT_DIR: an empty folder (logs are appended to); on a lent machine, $OUT.
#
# full (default):
# 1. bench/depthwise.py: the depthwise methods native, rows, shifts; the faster of native and
#    rows is used below.
# 2. bench/train_step.py: rgc_intermediate at 224 px, batch 32, bf16, with work elimination
#    on and off, its feedforward scaffold and ResNet-50 in the same process, filling a
#    persistent compilation cache.
# 3. The same model (elimination on) in a second process reusing that cache (compile + first
#    step).
# 4. In the background from the start: the compiled step's memory with and without remat,
#    elimination on and off (compile only, autotuning off so that it does not run on the GPU).
# 5. Larger batches (elimination on) while the budget lasts.
# probe: where the first step's time goes and what batch size does, in one short run:
# 1. T=4 instead of 17 with XLA's autotuning (first-step time against the number of steps);
# 2. T=17 with autotuning off (XLA_FLAGS=--xla_gpu_autotune_level=0) at batch 32 and 128, with
#    the scaffold and ResNet-50 under the same flags.
# legacy_cudnn: the next test of where the first step goes (per-convolution cuDNN plan building
# at the first execution?): first bench/depthwise.py for native, rows and shifts (shifts runs
# the depthwise convs as fused elementwise kernels, no cuDNN call); then, with the faster of
# native and rows, XLA_FLAGS=--xla_gpu_enable_cudnn_frontend=false
# (cuDNN's legacy API, no runtime-compiled engines) with autotuning on, batch 32 and 128,
# scaffold and ResNet-50 under the same flags; then a second process on the same cache.
set -u
out=${1:-${OUT:-/tmp/bench_out}}
budget=${2:-540}
plan=${3:-full}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import jax, keras; print('jax', jax.__version__, 'keras', keras.__version__)" \
    | tee -a "$out/gpu.txt"
cache=/tmp/jax_cache
left() { echo $((budget - SECONDS)); }
common=(--model=rgc_intermediate --image_size=224 --precision=bf16 --steps=10 --repeats=3)
# depthwise_best: runs bench/depthwise.py (native, rows, shifts) into $out/depthwise.txt and
# prints the faster of native and rows for the train steps; shifts is timed only (its step
# compiles 3-4x longer, bench/RESULTS.md).
depthwise_best() {
    timeout 110 python3 bench/depthwise.py --methods=native,rows,shifts >"$out/depthwise.txt" 2>&1
    awk '/^total (native|rows) / { if (m == "" || $3 < t) { t = $3; m = $2 } }
         END { print (m == "" ? "auto" : m) }' "$out/depthwise.txt"
}
# step LIMIT_S LOG ARGS...: bench/train_step.py on rgc_intermediate (common) with ARGS, its
# output without the runtime's log lines, appended to $out/LOG.
step() {
    local limit=$1 log=$2
    shift 2
    timeout "$limit" python3 bench/train_step.py "${common[@]}" "$@" 2>&1 \
        | grep -v "^WARNING\|^I0000\|^E0000" | tee -a "$out/$log"
}

if [ "$plan" = legacy_cudnn ]; then
    best=$(depthwise_best)
    cat "$out/depthwise.txt"
    export XLA_FLAGS=--xla_gpu_enable_cudnn_frontend=false
    step 290 legacy_cudnn.txt --batch=32,128 --depthwise="$best" \
        --compile_cache=$cache --resnet50_batch=128 --baseline_batch=128
    echo "--- second process, same cache ($(left) s left)"
    step $(($(left) - 5)) legacy_cudnn_cached.txt --batch=32 --depthwise="$best" \
        --compile_cache=$cache --baseline=
    echo "done in $SECONDS s"
    exit 0
fi
if [ "$plan" = probe ]; then
    step 80 t4.txt --times=4 --batch=32 --baseline=
    echo "--- autotuning off ($(left) s left)"
    XLA_FLAGS=--xla_gpu_autotune_level=0 step $(($(left) - 5)) autotune0.txt --batch=32,128 \
        --resnet50_batch=128 --baseline_batch=128
    echo "done in $SECONDS s"
    exit 0
fi
best=$(depthwise_best)
cat "$out/depthwise.txt"

(for remat in "" --remat; do
    XLA_FLAGS=--xla_gpu_autotune_level=0 timeout 200 python3 bench/train_step.py "${common[@]}" \
        --batch=32 --depthwise="$best" --baseline= --compile_only $remat
done) >"$out/memory.txt" 2>&1 &

step 300 train_step.txt --batch=32 --depthwise="$best" --compile_cache=$cache \
    --resnet50_batch=128 --baseline_batch=128
echo "--- second process, same cache ($(left) s left)"
step 120 cached.txt --batch=32 --depthwise="$best" --compile_cache=$cache --baseline= \
    --eliminate=on
for batch in 64 128; do
    if [ "$(left)" -lt 150 ]; then break; fi
    echo "--- batch $batch ($(left) s left)"
    step $(($(left) - 20)) batches.txt --batch=$batch --depthwise="$best" \
        --compile_cache=$cache --baseline= --eliminate=on
done
wait
echo "--- memory (compile only, autotuning off)"
grep "compiled step" "$out/memory.txt"
echo "done in $SECONDS s"
