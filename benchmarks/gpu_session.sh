#!/usr/bin/env bash
# The reproductions a 2-core CPU cannot reach (docs/results.md), as one prepared GPU run.
#
#   bash benchmarks/gpu_session.sh DATA_DIR OUT_DIR STAGE:SECONDS...
#
# Each stage runs under its own time limit (`timeout`; a training stopped there keeps every
# finished epoch in its metrics.jsonl) and writes under $WORK/<stage> (default
# /tmp/jaxlocal_gpu_session); at the end the small files (metrics.jsonl, config.json, benchmark
# JSON, the log) are packed into OUT_DIR/results.tar.gz, and checkpoints stay behind. Stages, any subset, in the order given:
#
#   throughput     VGG8B predsim and glob steps at batch 128, float32 and bfloat16
#   memory         issue 27 on the GPU: VGG8B's compiled temporary memory for the five losses at
#                  batch 128, float32 and bfloat16 (a third of the time); the peak CUDA memory
#                  of the reference's same steps (a sixth; needs torch, and the anchor copied
#                  to DATA_DIR/local_loss_train.py); the largest glob and pred batches within
#                  16 GiB, float32 (the rest)
#   c10s_predsim   cifar10-small VGG8B predsim, batch 32, 60 epochs (issue 3, item 6)
#   c10s_frozen    the same network with random frozen hidden blocks, output layer trained
#   fmnist_vgg8b   Fashion-MNIST VGG8B predsim, the paper's 200 epochs (issue 3, item 5)
#   mnist_vgg8b    MNIST VGG8B predsim, the paper's 100 epochs (issue 3, item 5)
#   mnist_cnn_al   MNIST CNN_AL, the thesis' 200 epochs (issue 5, item 5)
#   mnist_cnn_bp   its backprop baseline
#
# With the device tool (/work/.library/device/README.md): copy the npz files the stages need into
# the git-ignored data/, download the ml_collections wheel into the git-ignored .whl/, and run
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 bash benchmarks/gpu_session.sh data "$OUT" \
#     throughput:60 c10s_predsim:150 c10s_frozen:90 fmnist_vgg8b:200
#
# with carry = [".whl", "data"]. The wheel, for the device's Python 3.12:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ml_collections==1.1.0
# PYTHON names the interpreter (default python3).
set -uo pipefail

if (( $# < 3 )); then
  sed -n '2,/^set /p' "$0" | sed '$d' >&2
  exit 2
fi
data_dir=$1
out_dir=$2
shift 2
work=${WORK:-/tmp/jaxlocal_gpu_session}
mkdir -p "$work" "$out_dir"
log=$out_dir/session.log
python=${PYTHON:-python3}

train() {  # train NAME SECONDS CONFIG [OVERRIDES...]
  local name=$1 seconds=$2 config=$3
  shift 3
  timeout "$seconds" "$python" -m jaxlocal.main --config="$config" --config.data_dir="$data_dir" \
    "$@" --workdir="$work/$name"
}

run_stage() {  # run_stage NAME SECONDS
  local name=$1 seconds=$2
  case $name in
    throughput)
      for dtype in float32 bfloat16; do
        timeout "$((seconds / 2))" "$python" benchmarks/step_throughput.py \
          --config=configs/predsim_vgg8b.py --config.compute_dtype=$dtype --losses=predsim,glob \
          --repeats=20 --json="$work/step_throughput_$dtype.json"
      done ;;
    memory)
      for dtype in float32 bfloat16; do
        timeout "$((seconds / 6))" "$python" benchmarks/local_vs_global.py --memory_only \
          --model=vgg8b --compute_dtype=$dtype --max_seconds=$((seconds / 8)) \
          --json="$work/memory_$dtype.json"
      done
      timeout "$((seconds / 6))" "$python" benchmarks/reference_memory.py --cuda \
        --reference="$data_dir/local_loss_train.py" --json="$work/reference_memory_cuda.json"
      timeout "$((seconds / 2))" "$python" benchmarks/max_batch.py --losses=glob,pred \
        --budget_bytes=$((16 * 2**30)) --start=1024 --json="$work/max_batch_16GiB.json" ;;
    c10s_predsim)
      train "$name" "$seconds" configs/cifar10.py:vgg8b --config.loss=predsim \
        --config.dataset=cifar10-small --config.batch_size=32 --config.num_epochs=60 ;;
    c10s_frozen)
      train "$name" "$seconds" configs/cifar10.py:vgg8b --config.loss=predsim \
        --config.dataset=cifar10-small --config.batch_size=32 --config.num_epochs=60 \
        --config.freeze_hidden=True ;;
    fmnist_vgg8b) train "$name" "$seconds" configs/fashion_mnist.py:vgg8b --config.loss=predsim ;;
    mnist_vgg8b) train "$name" "$seconds" configs/mnist.py:vgg8b --config.loss=predsim ;;
    mnist_cnn_al) train "$name" "$seconds" configs/al_mnist.py:cnn ;;
    mnist_cnn_bp) train "$name" "$seconds" configs/al_mnist.py:cnn_bp ;;
    *) echo "unknown stage '$name': see the list at the top of $0" >&2; return 2 ;;
  esac
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$python" -c 'import jax; print("jax", jax.__version__, jax.devices())'
} 2>&1 | tee -a "$log"

for stage in "$@"; do
  name=${stage%%:*}
  seconds=${stage#*:}
  if [[ $name == "$stage" || ! $seconds =~ ^[0-9]+$ ]]; then
    echo "stage '$stage' needs a time limit in seconds, e.g. $name:120" | tee -a "$log" >&2
    continue
  fi
  started=$SECONDS
  echo "== $name (limit ${seconds}s)" | tee -a "$log"
  run_stage "$name" "$seconds" 2>&1 | grep -v -e '^I[0-9]' -e '^W[0-9]' | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - started))s" | tee -a "$log"
done

out_dir=$(cd "$out_dir" && pwd)
(cd "$work" && find . -name metrics.jsonl -o -name '*.json' \
  | tar -czf "$out_dir/results.tar.gz" -T -)
echo "packed $(tar -tzf "$out_dir/results.tar.gz" | wc -l) files into $out_dir/results.tar.gz"
