#!/usr/bin/env bash
# Issue #13's real-data runs at `quick` (2 CPU cores): Identity on held-out victims with its chance floor, the
# paired 8-cell grid with per-label and overall paired tests, and `confirm` on fresh victims; then the report.
# Usage: bash benchmarks/heldout_quick.sh   (DATA=path/to/cifar10, OUT=folder, SPACE=space, STUDY=name to override;
# SPACE=search_spaces/identity-solarize9.toml STUDY=solarize9 confirms the one significant paired8 cell alone)
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-benchmarks/reports/quick-heldout-$(date +%F)}
WORK=${WORK:-studies/heldout}  # the study database stays out of the report folder
mkdir -p "$OUT" "$WORK"
SPACE=${SPACE:-paired8}
STUDY=${STUDY:-paired8}
DB="sqlite:///$WORK/$STUDY.db"
common=(--profile quick --data-root "$DATA")
step() { local name=$1; shift; echo "== $name: $*"; /usr/bin/time -f "$name wall %e s" "$@" 2>&1 | tee "$OUT/$name.log"; }
# The grid first, in N_JOBS workers: it trains the judge once and fills the attack cache, so the Identity run at the
# end only reads its reconstructions back to draw the sheet and the chance floor.
step grid autoshield grid --space "$SPACE" --utility recognizability --study "$STUDY" --storage "$DB" \
  --n-jobs "${N_JOBS:-2}" "${common[@]}"
step confirm autoshield confirm --victims "${VICTIMS:-5}" --study "$STUDY" --storage "$DB" "${common[@]}"
step identity autoshield attack --policy identity --sheet "$OUT/identity.png" "${common[@]}"
step report autoshield report --study "$STUDY" --storage "$DB" --out "$OUT"
step victims autoshield export --victims --study "$STUDY" --storage "$DB" -o "$OUT/victims.csv"  # the ledger's evidence
cp "$WORK/$STUDY"-grid-cells.csv "$WORK/$STUDY"-grid-cells.md "$OUT"/ 2>/dev/null || true
