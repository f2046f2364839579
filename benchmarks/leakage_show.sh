#!/usr/bin/env bash
# Issue #34's Show (Identity, Solarize:9 and Rotate:9 under every attacker, 50 held-out victims at `quick`), built
# as an attack table over as many sessions as it takes, on any VM class whose portable judge is class C's:
#   1. a one-minute probe that this VM's judge kernels round as class C's, then the portable judge (22 min): the
#      table was scored by 72ba42bfef33 (class C, 2026-12-05); a VM that trains another digest cannot continue it,
#      and step 2 says so in one line;
#   2. the committed table, imported into a fresh study (its rows are not attacked again);
#   3. `table build` for MINUTES at most (SIGTERM between or inside a chunk keeps every finished chunk);
#   4. the table exported back over the committed file, with the per-victim CSV of every row so far.
# Then commit $OUT. Once every row is there, REPORT=1 also runs `adaptive_quick.sh` on this storage: the grid (read
# from the table), the nulls, the report and the per-victim export, before the table's export.
# Usage: MINUTES=100 bash benchmarks/leakage_show.sh   (DATA, OUT, WORK, MINUTES, CHUNK)
# The same steps continue any committed table under this judge: randaugment14's naive table (issue #35 item 6) is
#   SPACE=randaugment14 ATTACKER=naive STUDY=naive OUT=benchmarks/reports/naive-table WORK=studies/naive \
#   PIECES=dir MINUTES=30 bash benchmarks/leakage_show.sh
# where PIECES, when given, is a folder of `attacks.tar.part-*` from gpu.sh's step table58: the card's attacks,
# unpacked into this machine's cache before the build, which then finds them cached and only judges them.
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-benchmarks/reports/leakage-show}
WORK=${WORK:-studies/leakage}
SPACE=${SPACE:-search_spaces/leakage-show.toml}
ATTACKER=${ATTACKER:-worst}
STUDY=${STUDY:-leakage}
DB="sqlite:///$WORK/$STUDY.db"
if [ -n "${PIECES:-}" ]; then
  mkdir -p "${AUTOSHIELD_CACHE:-$HOME/.cache/autoshield}"
  cat "$PIECES"/attacks.tar.part-* | tar -x -C "${AUTOSHIELD_CACHE:-$HOME/.cache/autoshield}"
fi
export AUTOSHIELD_KERNELS=portable
# PROFILE=smoke ARGS="--set images_per_label=2": a dry run (the null needs two victims per label)
common=(--profile "${PROFILE:-quick}" --data-root "$DATA" ${ARGS:-})
mkdir -p "$OUT" "$WORK"
# a minute's probe before 22 minutes of judge: a VM whose judge kernels round unlike class C's would train another
# judge. The attack may round otherwise (class A's does: RESULTS.md, 2026-12-05 03:26): its rows are then this
# class's sample of the same attack (same victims, starts, settings and judge), and the README's run table says
# which rows each class added.
(cd benchmarks && python portable.py --settings portable --compare reports/portable-2026-12-05/classC.json \
  --require gemm conv reduce cells judge) ||
  { echo "this VM's portable judge kernels round unlike class C's: it cannot continue the table" >&2; exit 1; }
autoshield judge export "$WORK/judge.pt" "${common[@]}"
if [ -f "$OUT/table.jsonl.gz" ]; then
  autoshield table import "$OUT/table.jsonl.gz" --study "$STUDY" --storage "$DB" "${common[@]}"
fi
code=0
timeout --signal=TERM "${MINUTES:-100}m" autoshield table build --space "$SPACE" \
  --attacker "$ATTACKER" --chunk "${CHUNK:-25}" --study "$STUDY" --storage "$DB" "${common[@]}" || code=$?
[ "$code" = 0 ] || [ "$code" = 124 ] || [ "$code" = 143 ] || exit "$code"  # 124/143: the time was up
if [ -n "${REPORT:-}" ]; then  # once every row is in: the grid (read from the table), each cell's attack and null
  # (`attack --study --null`: table rows too, stored batch by batch), the report and the per-victim export. A stop
  # (SIGTERM to `autoshield attack`) keeps every finished batch: the export below still runs
  DATA="$DATA" OUT="$OUT" WORK="$WORK" SPACE="$SPACE" STUDY="$STUDY" PROFILE="${PROFILE:-quick}" ARGS="${ARGS:-}" NULL=1 N_JOBS=1 \
    SHEETS="${SHEETS:-Identity Solarize:9 Rotate:9}" bash benchmarks/adaptive_quick.sh || echo "report stopped: $?"
fi
autoshield table export "$OUT/table.jsonl.gz" --study "$STUDY" --storage "$DB" "${common[@]}"
python benchmarks/table_csv.py "$OUT/table.jsonl.gz" -o "$OUT/rows.csv"
