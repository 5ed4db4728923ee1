#!/usr/bin/env bash
# One call of the lent GPU machine: run benchmark steps, then pack what they wrote into $OUT.
#
#   COURSE_COMMIT=<short hash of the committed tree> bash benchmarks/gpu_session.sh STEP [STEP ...]
#
# The device tool copies the working tree without .git, so the caller names the commit (commit
# first: the tree must be exactly that commit). Data: the CIFAR-10 JPEG copy in .device_data/
# (carried, see benchmarks/README.md). Steps, in the order of what they unblock:
#
#   published   bn + faithful, 30 epochs each, shipped as course_pkg/pretrained/googlenet_cifar_*
#   multicrop   Table-3 on CIFAR-10 with the shipped checkpoints (and an ensemble of every BN-layout
#               checkpoint this call trained), and the 144-view throughput of the 224x224 googlenet
#   ablation    faithful without aux heads; the init ablation (PyTorch / He / Caffe), 10 epochs each
#   tricks      the BN recipe with one trick changed at a time
#   stem        the BN layout with the 32x32 stem
#   speed       fp32, NCHW and torch.compile throughput (a few epochs each)
#   frontier    the BN layout at 10/15/20/40 epochs: accuracy against training time
#
# Every step runs under one deadline (BUDGET seconds, default 540 of the tool's 600), so that the
# packing at the end always happens; a step cut short keeps the runs that finished (each script
# rewrites its results after every run). What comes back (the tool returns at most 8 files):
#   $OUT/results.tar.gz   benchmarks/results/ files written by this call
#   $OUT/log.txt          everything the steps printed
#   $OUT/googlenet_cifar_{bn,faithful}.{pt,json}   when `published` ran
set -u -o pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu_session_out}
BUDGET=${BUDGET:-540}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 COURSE_QUIET=1
export COURSE_DATA=${COURSE_DATA:-$PWD/.device_data}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
START=$SECONDS
CKPTS=${CKPTS:-.cache/benchmarks/cifar}  # where train_cifar.py keeps every run's checkpoint
MARK=$(mktemp)  # results newer than this file were written by this call

say() { echo "[gpu_session $((SECONDS - START)) s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - (SECONDS - START))); }

if [ -z "${COURSE_COMMIT:-}" ] && ! git rev-parse --short HEAD >/dev/null 2>&1; then
    echo "gpu_session: no .git here: name the commit, e.g. COURSE_COMMIT=\$(git rev-parse --short HEAD) (run from a clean tree)" >&2
    exit 2
fi
if [ ! -f "$COURSE_DATA/cifar10_jpeg.npz" ]; then
    echo "gpu_session: no $COURSE_DATA/cifar10_jpeg.npz: copy it there and carry the folder (benchmarks/README.md)" >&2
    exit 2
fi
[ $# -gt 0 ] || { sed -n 2,26p "$0"; exit 2; }

# run SECONDS_RESERVED CMD...: the command gets what is left of the budget minus the reserve
run() {
    local reserve=$1; shift
    local limit=$(( $(left) - reserve ))
    if [ "$limit" -lt 30 ]; then say "skipped (budget spent): $*"; return 0; fi
    say "start (limit ${limit} s): $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG"
    say "exit ${PIPESTATUS[0]}: $1 ${2:-} ${3:-}"
}
stop_after() { echo $(( $(left) - ${1:-120} )); }  # start no new run when less than this is left

python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"

for step in "$@"; do
    case "$step" in
        published) run 20 python3 benchmarks/train_cifar.py --group published --publish --stop-after "$(stop_after 150)" ;;
        ablation)  run 20 python3 benchmarks/train_cifar.py --group ablation --stop-after "$(stop_after 110)" ;;
        tricks)    run 20 python3 benchmarks/train_cifar.py --group tricks --stop-after "$(stop_after 90)" ;;
        stem)      run 20 python3 benchmarks/train_cifar.py --group stem ;;
        speed)     run 20 python3 benchmarks/train_cifar.py --group speed --stop-after "$(stop_after 150)" ;;
        frontier)  run 20 python3 benchmarks/train_cifar.py --only bn --sweep epochs=10,15,20,40 --tag frontier \
                       --stop-after "$(stop_after 120)" ;;
        multicrop)
            run 20 python3 benchmarks/multicrop_throughput.py --bf16
            run 20 python3 benchmarks/multicrop_cifar.py --bf16
            ensemble=$(ls "$CKPTS"/bn*.pt 2>/dev/null | grep -v resume | paste -sd, -)
            if [ -n "$ensemble" ] && [ "$(echo "$ensemble" | tr ',' '\n' | wc -l)" -gt 1 ]; then
                run 20 python3 benchmarks/multicrop_cifar.py --bf16 --models "$ensemble" --stem multicrop_cifar_ensemble
            else
                say "multicrop ensemble: fewer than two BN-layout checkpoints trained in this call; skipped"
            fi ;;
        *) say "unknown step $step (see the top of this file)"; exit 2 ;;
    esac
done

# pack: results written by this call, and the published checkpoints
find benchmarks/results -type f -newer "$MARK" -print0 | tar -czf "$OUT/results.tar.gz" --null -T -
for f in course_pkg/pretrained/googlenet_cifar_*.pt course_pkg/pretrained/googlenet_cifar_*.json; do
    [ -f "$f" ] && [ "$f" -nt "$MARK" ] && cp "$f" "$OUT/"
done
say "packed: $(ls "$OUT" | tr '\n' ' ')"
