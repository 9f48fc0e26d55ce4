#!/usr/bin/env bash
# Is the project ready for this GPU? One run of at most 8 minutes on one GPU, one summary.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [--smoke]
#
# 1. The whole test suite, as the README runs it, with pytest-xdist workers sized to the GPU and
#    the host (about one per 8 GiB of GPU memory, at most the CPU count less two, at most 12) and
#    XLA_PYTHON_CLIENT_PREALLOCATE=false (tests/conftest.py sets it too); stopped after
#    SUITE_SECONDS (default 300).
# 2. benchmarks/local_vs_global.py for VGG8B glob, predsim and pred at batch BATCH (default 128),
#    float32 then bfloat16, each starting no row after 35 s (--max_seconds: a row compiles its
#    step, autotuning every convolution, then times 10 steps) and stopped after 75 s.
#    Setup and summary take about 15 s more: 300 + 2 · 75 + 15 < 480 s in all.
# 3. OUT_DIR/summary.md: the device, the suite's verdict with every failure, both tables, and
#    VGG8B predsim's counted GFLOP per image and TFLOP/s against the hand count (13.99 GFLOP
#    per image: tests/test_flops.py). The logs and JSON files lie beside it.
#
# --smoke runs the same steps at CPU size (two test files, a one-conv network at batch 8), to
# check the script itself without a GPU; its summary says so.
#
# With the device tool (/work/.library/device/README.md): the device's Python lacks
# ml_collections, so first, here, put its wheel into the git-ignored .whl/:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     ml_collections==1.1.0
# then run `bash benchmarks/gpu_check.sh "$OUT"` with carry = [".whl"]. Every wheel in .whl/ is
# installed into /tmp/jaxlocal_site, which a .pth file puts on every Python's path (the benchmark
# tests start subprocesses with their own PYTHONPATH); the repository goes on the path the same
# way, so no `pip install -e .` is needed. PYTHON names the interpreter (default python3).
set -uo pipefail

if (( $# < 1 )) || [[ $1 == -* ]]; then
  sed -n '2,/^set /p' "$0" | sed '$d' >&2
  exit 2
fi
out_dir=$(mkdir -p "$1" && cd "$1" && pwd)
smoke=false
[[ ${2:-} == --smoke ]] && smoke=true
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
started=$SECONDS
summary=$out_dir/summary.md

if compgen -G '.whl/*.whl' >/dev/null; then  # wheels carried to a machine without registries
  site_dir=/tmp/jaxlocal_site
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site_dir" .whl/*.whl \
    || exit 3
  "$python" - "$site_dir" "$repo" <<'EOF' || exit 3
import site, sys
folder = site.getusersitepackages() if site.ENABLE_USER_SITE else site.getsitepackages()[0]
import os; os.makedirs(folder, exist_ok=True)
open(os.path.join(folder, 'jaxlocal_gpu_check.pth'), 'w').write('\n'.join(sys.argv[1:]) + '\n')
EOF
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}

# --- the device, and the workers it affords ---
gpu_gib=0
if command -v nvidia-smi >/dev/null; then
  gpu_line=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)
  gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  gpu_gib=$(( gpu_mib / 1024 ))
  gpu_line=${gpu_line%%$'\n'*}
else
  gpu_line='no nvidia-smi: no NVIDIA GPU'
fi
cpus=$(nproc)
workers=$(( gpu_gib / 8 ))
(( workers > cpus - 2 )) && workers=$(( cpus - 2 ))
(( workers > 12 )) && workers=12
(( workers < 2 )) && workers=2
jax_line=$("$python" -c 'import jax; print("jax", jax.__version__, jax.devices())' 2>&1 | tail -1)

if $smoke; then
  suite=(tests/test_flops.py tests/test_determinism.py)
  suite_seconds=${SUITE_SECONDS:-240}
  lvg=(--config=configs/quickstart.py --model=vgg:8,M --losses=glob,predsim,pred --batch_size=8
       --repeats=1)
else
  suite=()
  suite_seconds=${SUITE_SECONDS:-300}
  lvg=(--model=vgg8b --losses=glob,predsim,pred --batch_size="${BATCH:-128}" --repeats=10)
fi

# --- 1. the test suite ---
echo "== test suite: $workers workers, limit ${suite_seconds}s"
timeout "$suite_seconds" "$python" -m pytest -q -n "$workers" --dist load -p no:cacheprovider \
  "${suite[@]}" >"$out_dir/suite.log" 2>&1
suite_status=$?
tail -3 "$out_dir/suite.log"

# --- 2. local vs global, float32 and bfloat16 ---
for dtype in float32 bfloat16; do
  echo "== local_vs_global $dtype"
  timeout 75 "$python" benchmarks/local_vs_global.py "${lvg[@]}" --compute_dtype=$dtype \
    --max_seconds=35 --json="$out_dir/local_vs_global_$dtype.json" \
    >"$out_dir/local_vs_global_$dtype.log" 2>&1
  echo "exit $?"
done

# --- 3. the summary ---
"$python" - "$out_dir" "$suite_status" "$smoke" "$workers" "$suite_seconds" \
  "$gpu_line" "$jax_line" "$(( SECONDS - started ))" >"$summary" <<'EOF'
import json, os, re, sys
out, status, smoke, workers, limit, gpu, jaxv, seconds = sys.argv[1:]
HAND_PREDSIM = 13.99  # GFLOP per CIFAR image, VGG8B predsim step (tests/test_flops.py)
print('# GPU check' + (' (--smoke: CPU-sized, not a GPU result)' if smoke == 'true' else ''))
print(f'\n{gpu}; {jaxv}\n')
log = open(os.path.join(out, 'suite.log')).read().splitlines()
verdict = next((l for l in reversed(log) if re.search(r'\d+ (passed|failed)', l)), 'no verdict')
state = {'0': 'passed', '124': f'STOPPED at {limit} s'}.get(status, f'FAILED (exit {status})')
print(f'## Test suite: {state}\n\n{workers} workers: `{verdict.strip("= ")}`\n')
for line in log:
  if line.startswith(('FAILED', 'ERROR')):
    print(f'- {line}')
for dtype in ('float32', 'bfloat16'):
  path = os.path.join(out, f'local_vs_global_{dtype}.json')
  print(f'\n## local_vs_global.py, {dtype}\n')
  if not os.path.exists(path):
    print(f'no result: see local_vs_global_{dtype}.log')
    continue
  result = json.load(open(path))
  cols = ['model', 'loss', 'images_per_s', 'median_step_s', 'time_vs_first', 'temp_MiB',
          'GFLOP_per_image', 'TFLOP_per_s', 'fraction_of_peak']
  print(result['title'] + f', {result["device"]}\n')
  print('| ' + ' | '.join(cols) + ' |\n|' + '---|' * len(cols))
  for row in result['rows']:
    print('| ' + ' | '.join(f'{row[c]:.4g}' if isinstance(row.get(c), float) else
                            str(row.get(c, '')) for c in cols) + ' |')
  if result.get('skipped'):
    print(f'\nskipped (--max_seconds): {", ".join(result["skipped"])}')
  for row in result['rows']:
    if row['model'] == 'vgg8b' and row['loss'] == 'predsim':
      hand = HAND_PREDSIM * row['images_per_s'] / 1e3
      print(f'\nVGG8B predsim: counted {row["GFLOP_per_image"]:.2f} GFLOP/image (hand count '
            f'{HAND_PREDSIM}); {row["TFLOP_per_s"]:.1f} TFLOP/s against {hand:.1f} by hand at '
            f'{row["images_per_s"]:.0f} img/s ({100 * (row["TFLOP_per_s"] / hand - 1):+.1f} %)')
print(f'\n{seconds} s in all.')
EOF
cat "$summary"
echo "written to $summary"
