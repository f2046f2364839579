#!/bin/bash
# Attack settings side by side on one card, one process per setting, in waves, and pack the attack cache for the
# machine that judges them. At `quick`'s width an attack runs many small kernels: one process does not fill an
# H200, two side by side kept it at 100 % (2026-12-04) and six finished nothing in 440 s. A wave ends before the
# next starts, so the first wave holds the settings a decision waits for. `attack_budget.py --no-judge` only
# attacks and caches; the CPU machine judges the unpacked cache with its own judge (every victim found cached), so
# the GPU rows and its own are judged alike. Used by gpu.sh's step `saturation`.
#   DATA=folder ARGS="--profile quick ..." WAVES="setting setting|setting ..." DEADLINE=epoch-seconds \
#   WORK=dir OUT=dir bash benchmarks/attack_waves.sh
# Writes $OUT/attacks.tar (the cache's attacks/ folder) and $OUT/attacks.log (every process's log, a wave's
# summary lines after it ends). A wave that outlives DEADLINE is stopped; what finished before is packed.
set -u
: "${DATA:?}" "${WAVES:?}" "${DEADLINE:?}" "${WORK:?}" "${OUT:?}" "${AUTOSHIELD_CACHE:?}"
mkdir -p "$WORK" "$OUT"
LOG=$OUT/attacks.log
n=0
if command -v nvidia-smi > /dev/null; then  # how busy the card is with the processes side by side
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 15 > "$WORK/card.log" 2>&1 &
  CARD=$!
fi
IFS='|' read -ra waves <<< "$WAVES"
for wave in "${waves[@]}"; do
  left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt 30 ]; then echo "no time left for the wave: $wave" | tee -a "$LOG"; break; fi
  echo "$(date -u +%T) wave of $(wc -w <<< "$wave") settings, $left s left: $wave" | tee -a "$LOG"
  first=$((n + 1))
  for setting in $wave; do
    n=$((n + 1))
    # shellcheck disable=SC2086  # ARGS holds several words
    PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 timeout -k 10 "$left" python3 benchmarks/attack_budget.py --no-judge --data-root "$DATA" $ARGS \
      --settings "$setting" > "$WORK/attack-$n.log" 2>&1 &
  done
  while [ -n "$(jobs -rp | grep -v "^${CARD:-none}$")" ]; do  # each process's last line every 10 s: how far it got
    sleep 10
    for i in $(seq "$first" "$n"); do echo "$(date -u +%T) attack-$i: $(tail -c 300 "$WORK/attack-$i.log" | tr '\r' '\n' | tail -1)"; done >> "$LOG"
  done
  for i in $(seq "$first" "$n"); do
    grep -h -E "victims, .* cached|Error|error" "$WORK/attack-$i.log" || echo "attack-$i: no result (cut at the deadline?)"
  done | tee -a "$LOG"
done
if [ -n "${CARD:-}" ]; then kill "$CARD"; echo "--- card"; cat "$WORK/card.log"; fi >> "$LOG"
for i in $(seq 1 "$n"); do echo "--- attack-$i"; cat "$WORK/attack-$i.log"; done >> "$LOG"
[ -d "$AUTOSHIELD_CACHE/attacks" ] || { echo "no attack finished" | tee -a "$LOG"; exit 1; }
tar -C "$AUTOSHIELD_CACHE" -cf "$OUT/attacks.tar" attacks && echo "$(date -u +%T) $(tar -tf "$OUT/attacks.tar" | grep -c '\.pt$') attacks -> $OUT/attacks.tar" | tee -a "$LOG"
