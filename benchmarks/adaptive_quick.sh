#!/usr/bin/env bash
# Issue #15's real-data run at `quick`: the 9 cells of `adaptive9` on the 50 held-out victims, each attacked by the
# naive, the post-hoc and the adaptive attacker (grid --attacker worst), each paired with Identity under the same
# attacker; then the attackers' sheet (original | transformed | naive | posthoc | adaptive) of three cells, and the
# report (survivors per label, attackers.md). About 20 cell-attacks of 50 victims x 1,500 iterations: ~2.5 h with
# 2 workers on 2 CPU cores; minutes on a GPU.
# Usage: bash benchmarks/adaptive_quick.sh   (DATA=path/to/cifar10, OUT=folder, N_JOBS=workers to override)
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-benchmarks/reports/quick-adaptive-$(date +%F)}
WORK=${WORK:-studies/adaptive}
mkdir -p "$OUT" "$WORK"
DB="sqlite:///$WORK/adaptive9.db"
common=(--profile quick --data-root "$DATA")
step() { local name=$1; shift; echo "== $name: $*"; /usr/bin/time -f "$name wall %e s" "$@" 2>&1 | tee "$OUT/$name.log"; }
step grid autoshield grid --space adaptive9 --attacker worst --utility recognizability --study adaptive9 \
  --storage "$DB" --n-jobs "${N_JOBS:-2}" "${common[@]}"
for cell in Brightness:5 Rotate:5 Solarize:5; do  # read back from the attack cache: seconds each
  step "attack-${cell/:/}" autoshield attack --policy "$cell" --attacker worst --sheet "$OUT/sheet-${cell/:/}.png" \
    "${common[@]}"
done
step report autoshield report --study adaptive9 --storage "$DB" --out "$OUT"
