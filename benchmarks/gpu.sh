#!/bin/bash
# Every GPU figure in benchmarks/RESULTS.md comes from this script's log, with the card's name.
# On the GPU machine, from the project root, after `bash ../shared/gpu/pack.sh` here:
#     bash benchmarks/gpu.sh            (log: $OUT/gpu.log, written as it goes)
# Dry run on the CPU at tiny sizes (AUTOSHIELD_DATA must point at a CIFAR-10 folder):
#     GPU_DRY=1 bash benchmarks/gpu.sh /tmp/gpu-dry.log
# Each step runs under its own `timeout`, so one slow step cannot eat the others' time.
set -u
LOG=${1:-${OUT:-.}/gpu.log}
: > "$LOG"
if [ -n "${GPU_DRY:-}" ]; then
  PROFILE=smoke DEVICE=cpu WIDTH=8 SIZES="2 4" EPOCHS=1 REF="--set reference.epochs=1"
  autoshield() { python3 -m autoshield.cli "$@"; }
  TMP=$(mktemp -d)
else
  source .gpu/env.sh >>"$LOG" 2>&1  # not through a pipe: its variables and function must stay in this shell
  cat "$LOG"
  PROFILE=paper DEVICE=cuda WIDTH=64 SIZES="10 50 100" EPOCHS=3 REF="--set reference.epochs=3"
  TMP=$GPU_TMP
fi
now() { python3 -c 'import time; print(time.time())'; }
step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 start
  shift 2
  echo "=== $name (limit $limit s): $*" | tee -a "$LOG"
  start=$(now)
  timeout "$limit" bash -c "$(declare -f autoshield); $*" 2>&1 | tee -a "$LOG"
  echo "=== $name: exit ${PIPESTATUS[0]} after $(python3 -c "print(round($(now) - $start, 1))") s" | tee -a "$LOG"
}
echo "=== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) profile $PROFILE device $DEVICE" | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" | tee -a "$LOG"
STORE="--storage sqlite:///$TMP/gpu.db --artifacts $TMP/artifacts"
SMALL="--set attack.iterations=100 --set images_per_label=1 $REF"

# Goal 1 of the GPU issue, today: training throughput of the paper recipe (3 epochs of it).
step train 90 autoshield train --profile $PROFILE --device $DEVICE --set train.epochs=$EPOCHS
# Goal 2, today: attack ms per image-iteration at width 64 by batch size, and where the time goes.
step attack_bench 120 python3 benchmarks/bench_attack.py --device $DEVICE --widths $WIDTH --modes batched \
  --batch-sizes $SIZES --iterations 20 --trace --data-root "\$AUTOSHIELD_DATA"
# The CLI paths on this device, end to end: attack, a 2-trial search, one DP-SGD baseline, the report.
step attack_cli 90 autoshield attack --profile $PROFILE --device $DEVICE $SMALL --sheet $TMP/attack.png
step search 90 autoshield search --trials 2 --profile $PROFILE --device $DEVICE $SMALL --set train.epochs=1 $STORE
step baseline 120 autoshield baseline --sigma 0.5 --profile $PROFILE --device $DEVICE $SMALL --set train.epochs=1 $STORE
step report 40 autoshield report $STORE --out $TMP/report
if [ -n "${OUT:-}" ]; then cp -r "$TMP/report" "$TMP/attack.png" "$OUT/" 2>/dev/null; fi
echo "=== done $(date -u +%FT%TZ)" | tee -a "$LOG"
