#!/usr/bin/env bash
# Issue #14's real-data run at `quick` (2 CPU cores): DP-SGD at σ = 0.1 / 0.5 / 1.0 on the profile's network
# (model accuracy, ε, attack accuracy noised and weights, the σ = 0 control and the comparable flag), and on the
# same network and victims a trained-utility grid of Identity and one augmentation policy; then the report.
# Usage: bash benchmarks/dp_like_with_like.sh   (DATA, OUT, WORK, CELL and EXTRA="--set ..." override)
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-benchmarks/reports/quick-dp-$(date +%F)}
WORK=${WORK:-studies/dp}
CELL=${CELL:-Solarize:9}
mkdir -p "$OUT" "$WORK"
DB="sqlite:///$WORK/like.db"
read -r -a extra <<< "${EXTRA:-}"
common=(--profile quick --data-root "$DATA" --study like --storage "$DB" "${extra[@]}")
printf 'name = "identity-and-one"\ncells = ["Identity", "%s"]\n' "$CELL" > "$WORK/space.toml"
step() { local name=$1; shift; echo "== $name: $*"; /usr/bin/time -f "$name wall %e s" "$@" 2>&1 | tee "$OUT/$name.log"; }
step baseline autoshield baseline --sigma 0.1 0.5 1.0 "${common[@]}"
step grid autoshield grid --space "$WORK/space.toml" --utility trained "${common[@]}"
step report autoshield report --study like --storage "$DB" --out "$OUT"
