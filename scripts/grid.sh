#!/usr/bin/env bash
# Issue 9 item 5: the validity / availability grid as a benchmark (not a timed test, not part
# of the main job). Runs benchmarks/grid/ (n ∈ {4, 7, 10, 31}, f = f_max, every Byzantine
# strategy, 0/5/10% loss, latency 1–100 ms) in release and prints one Markdown row per point:
#
#   scripts/grid.sh                       # 1000 seeds per point (144 points: hours on 2 cores)
#   SEEDS=200 scripts/grid.sh             # fewer seeds
#   SEEDS=50 ONLY=grid-n7 scripts/grid.sh # one file of benchmarks/grid/
#   OUT=out/grid JOBS=2 BFTSIM=target/release/bftsim scripts/grid.sh
#   TABLE_ONLY=1 OUT=out/grid scripts/grid.sh   # re-print the table of an earlier run
#
# Columns: runs; runs violating liveness; runs violating a validity invariant
# (external-validity, unanimity-validity, support-validity); runs violating agreement or
# integrity; other violations (threshold, panic); sessions decided; decided for another
# candidate than the ground-truth best ("wrong"); escalated or agreed "no decision"; Byzantine
# influence (sessions whose decision differs from the engine's on the honest votes alone); and
# escalated / no decision by honest disagreement. Goals: 0, 0, 0 violations and influence ≤ 1%.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1000}
JOBS=${JOBS:-2}
OUT=${OUT:-out/grid}
ONLY=${ONLY:-}
BFTSIM=${BFTSIM:-}
if [ -z "${TABLE_ONLY:-}" ]; then
  if [ -z "$BFTSIM" ]; then
    cargo build --release --bin bftsim >&2
    BFTSIM=./target/release/bftsim
  fi
  paths=(benchmarks/grid)
  [ -n "$ONLY" ] && paths=(benchmarks/grid/"$ONLY".toml)
  # Exit 1 (a point missed its expectation) is a result here, not an error.
  "$BFTSIM" run "${paths[@]}" --seeds "$SEEDS" --jobs "$JOBS" --out "$OUT" --quiet >&2 || [ $? -eq 1 ]
fi
jq -r '
  def pct(x; d): if d == 0 then "–" else ((x * 1000 / d | round) / 10 | tostring) + "%" end;
  def v(names): [.violations | to_entries[] | select(.key as $k | names | index($k)) | .value] | add // 0;
  "| n | strategy | loss | runs | liveness | validity | agreement | other viol. | decided | wrong | escalated / no decision | Byzantine influence | honest escalations |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  (.scenarios[] |
    "| \(.params["agents.count"]) | \(.params["byzantine.strategy"]) | \(.params["network.drop"] | tonumber * 100 | round)% | \(.runs) | \(v(["liveness"])) | \(v(["external-validity","unanimity-validity","support-validity"])) | \(v(["agreement","integrity"])) | \(v(["threshold","panic","determinism"])) | \(pct(.decided; .sessions)) | \(pct(.decided - .correct; .sessions)) | \(pct(.escalated + .no_decision; .sessions)) | \(pct(.influenced // 0; .sessions)) | \(pct(.honest_unresolved // 0; .sessions)) |"),
  "",
  "| n | points | runs | sessions | liveness | validity | agreement | decided | wrong | escalated / no decision | Byzantine influence | worst point (influence) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  (.scenarios | group_by(.params["agents.count"] | tonumber)[] |
    (map(.sessions) | add) as $s |
    (max_by(if .sessions == 0 then 0 else (.influenced // 0) / .sessions end)) as $w |
    "| \(.[0].params["agents.count"]) | \(length) | \(map(.runs) | add) | \($s) | \(map(v(["liveness"])) | add) | \(map(v(["external-validity","unanimity-validity","support-validity"])) | add) | \(map(v(["agreement","integrity"])) | add) | \(pct(map(.decided) | add; $s)) | \(pct(map(.decided - .correct) | add; $s)) | \(pct(map(.escalated + .no_decision) | add; $s)) | \(pct(map(.influenced // 0) | add; $s)) | \($w.params["byzantine.strategy"]) \($w.params["network.drop"]): \(pct($w.influenced // 0; $w.sessions)) |")
' "$OUT/summary.json"
