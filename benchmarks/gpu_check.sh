#!/usr/bin/env bash
# One-call GPU check of the inference engine and training step (benchmarks/README.md, "One-call GPU check").
#
#   bash benchmarks/gpu_check.sh OUTDIR            # on a GPU machine: about 8 minutes in all
#   bash benchmarks/gpu_check.sh OUTDIR --tiny     # CPU dry run of the same sections (tiny model, few frames)
#
# Sections, each with its own time limit so that the summary always comes: the GPU tests (pytest -m gpu),
# the engine table (paths plain, fast, fast-bf16, compiled, compiled-bf16; --frames 70 --rate 180 --ops),
# the training rows, a 2,000-frame bounded-memory curve, and the batch_videos rows (8 videos segmented
# 1, 2, 4, 8 at a time, R18 240x427 and R50 480x854, loop 0 and 10). Full outputs go to OUTDIR/*.txt; a short
# summary is printed last. Needs torch, opencv and pyyaml; yacs, if missing, is installed from the wheel
# in .whl/ (no internet needed). Run from the repository root.
set -u
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash benchmarks/gpu_check.sh OUTDIR [--tiny]" >&2
    exit 2
fi
OUTDIR=$1
TINY=0
if [ "${2:-}" = "--tiny" ]; then TINY=1; elif [ -n "${2:-}" ]; then
    echo "error: unknown option ${2} (only --tiny)" >&2
    exit 2
fi
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR" || exit 2
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import yacs" 2>/dev/null; then
    if ! ls .whl/yacs-*.whl >/dev/null 2>&1; then
        echo "error: yacs is not installed and no .whl/yacs-*.whl wheel is here (benchmarks/README.md says how to carry it)" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/yacs-*.whl \
        > "$OUTDIR/install.txt" 2>&1 || { echo "error: installing .whl/yacs failed (see $OUTDIR/install.txt)" >&2; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

if [ $TINY = 1 ]; then
    # compiled-bf16 is left out here: bf16 is emulated on CPUs without bf16 instructions, and its inductor
    # compilation would double this dry run's time; the compiled fp32 row exercises the same code
    ENGINE="--tiny --size 32 64 --frames 5 --rate 50 --ops --paths plain,fast,fast-bf16,compiled --train_iters 0"
    TRAIN="--tiny --size 32 64"
    LONG="--tiny --size 32 64 --long 20 --every 10 --max_memory_frames 7 --train_iters 0 --paths fast,compiled --rate 50"
    GPU_TESTS="tests/engine/test_fast_path.py"
    BATCHED=("--tiny --size 32 64 --ops --batch_videos 1,2 --set_videos 2 --batch_loops 1 --paths fast")
    LIMITS=(120 240 120 180 120)
else
    ENGINE="--frames 70 --rate 180 --ops --paths plain,fast,fast-bf16,compiled,compiled-bf16 --train_iters 0"
    TRAIN="--train_iters 10"
    LONG="--arch resnet50 --size 480 854 --long 2000 --every 250 --max_memory_frames 20 --train_iters 0 --paths fast"
    GPU_TESTS="tests"
    # batch_videos rows (issue 16): 8 videos of 40 frames segmented 1, 2, 4, 8 at a time, loop 0 and 10
    BATCHED=("--arch resnet18 --size 240 427 --frames 40 --rate 180 --ops --batch_videos 1,2,4,8 --paths fast-bf16"
             "--arch resnet50 --size 480 854 --frames 40 --rate 180 --batch_videos 1,2,4,8 --paths fast-bf16")
    LIMITS=(120 240 75 45 300)
fi

declare -A STATUS
run() {  # name, seconds, command...: output to OUTDIR/name.txt, status kept for the summary
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@" > "$OUTDIR/$name.txt" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    case $rc in
        0) STATUS[$name]="ok (${took} s)" ;;
        124|137) STATUS[$name]="TIMED OUT after ${limit} s (partial output kept)" ;;
        *) STATUS[$name]="FAILED, exit $rc (${took} s)" ;;
    esac
}

{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; "$PY" -c "import torch; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available())"; } > "$OUTDIR/machine.txt" 2>&1
run gpu_tests "${LIMITS[0]}" "$PY" -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors $GPU_TESTS
# shellcheck disable=SC2086
run engine "${LIMITS[1]}" "$PY" benchmarks/engine_speed.py $ENGINE
# shellcheck disable=SC2086
run training "${LIMITS[2]}" "$PY" benchmarks/engine_speed.py $TRAIN --paths ''
# shellcheck disable=SC2086
run long "${LIMITS[3]}" "$PY" benchmarks/engine_speed.py $LONG
BATCHED_CMD=""
for args in "${BATCHED[@]}"; do BATCHED_CMD+="\"$PY\" benchmarks/engine_speed.py $args && "; done
run batched "${LIMITS[4]}" bash -c "${BATCHED_CMD}true"

echo
echo "== gpu_check summary ($( [ $TINY = 1 ] && echo 'tiny CPU dry run' || echo 'GPU' )); full outputs in $OUTDIR"
cat "$OUTDIR/machine.txt"
for name in gpu_tests engine training long batched; do
    echo "-- $name: ${STATUS[$name]}"
    case $name in
        gpu_tests) tail -n 1 "$OUTDIR/$name.txt" ;;
        engine|training|batched) grep -E '^\| ' "$OUTDIR/$name.txt" | grep -v -- '| --- |' ;;
        long) grep -E '^long \|' "$OUTDIR/$name.txt" | tail -n 4 ;;
    esac
done
for name in gpu_tests engine training long batched; do
    case ${STATUS[$name]} in ok*) ;; *) exit 1 ;; esac
done
