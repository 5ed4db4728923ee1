#!/usr/bin/env bash
# The one GPU entry point: a call of the lent GPU machine runs the steps named, then packs what they
# wrote into $OUT.
#
#   COURSE_COMMIT=<short hash of the committed tree> bash benchmarks/gpu_session.sh STEP [STEP ...]
#
# The device tool copies the working tree without .git, so the caller names the commit (commit
# first: the tree must be exactly that commit). Data: the CIFAR-10 JPEG copy in .device_data/
# (carried, see benchmarks/README.md). A step is
#
#   RUN      a reference run of benchmarks/reference_cpu.py (`--list` names them): the same recipe,
#            trained by `course train` on the GPU, its results and weights written as on the CPU
#   table3   Table 3 on CIFAR-10 (benchmarks/table3_cifar.py: every table, the full test split)
#
# Every step runs under one deadline (BUDGET seconds, default 540 of the tool's 600), so that the
# packing at the end always happens. What comes back (the tool returns few files):
#   $OUT/results.tar.gz   files written by this call under benchmarks/results/, benchmarks/weights/
#                         and course_pkg/pretrained/
#   $OUT/log.txt          everything the steps printed
# QUICK=1 runs each reference run as its plumbing check (32 images, into $OUT/quick): how the tests
# run this script on a CPU.
set -u -o pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu_session_out}
BUDGET=${BUDGET:-540}
QUICK=${QUICK:-}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 COURSE_QUIET=1
export COURSE_DATA=${COURSE_DATA:-$PWD/.device_data}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
START=$SECONDS
MARK=$(mktemp)  # files newer than this one were written by this call

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
[ $# -gt 0 ] || { sed -n 2,22p "$0"; exit 2; }
RUNS=$("$PYTHON" -c "import sys; sys.path.insert(0, 'benchmarks'); import reference_cpu; print(' '.join(reference_cpu.RUNS))")
for step in "$@"; do
    case " $RUNS table3 " in
        *" $step "*) ;;
        *) say "unknown step $step: choose table3 or a reference run ($RUNS)"; exit 2 ;;
    esac
done

# run CMD...: the command gets what is left of the budget, less 20 s for the packing
run() {
    local limit=$(( $(left) - 20 ))
    if [ "$limit" -lt 30 ]; then say "skipped (budget spent): $*"; return 0; fi
    say "start (limit ${limit} s): $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG"
    say "exit ${PIPESTATUS[0]}: $*"
}

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"

for step in "$@"; do
    if [ "$step" = table3 ]; then
        run "$PYTHON" benchmarks/table3_cifar.py
    elif [ -n "$QUICK" ]; then
        run "$PYTHON" benchmarks/reference_cpu.py "$step" --quick --out-dir "$OUT/quick"
    else
        run "$PYTHON" benchmarks/reference_cpu.py "$step"
    fi
done

# pack: what this call wrote where results and weights are committed
find benchmarks/results benchmarks/weights course_pkg/pretrained -type f -newer "$MARK" -print0 2>/dev/null \
    | tar -czf "$OUT/results.tar.gz" --null -T -
say "packed: $(tar -tzf "$OUT/results.tar.gz" | tr '\n' ' ')"
