#!/usr/bin/env bash
# Checker power: for every deliberately broken protocol variant (the `mutation = "…"` of the
# bundled scenarios/mut-*.toml), the runs `bftsim explore` needs to find it, over several master
# seeds, in each mode; and the first seed of its bundled scenario that `bftsim run` catches.
# A run counts as a catch only if the correct protocol passes the same run (explore's control).
#
#   scripts/mutation-table.sh                 # 5 master seeds, budget 5000 runs, all modes
#   SEEDS="1 2 3" BUDGET=1000 MODES="all twins" ONLY="no-locking" scripts/mutation-table.sh
#   BUNDLED_SEEDS=200 scripts/mutation-table.sh   # seeds of the bundled scenario (0: skip it)
#
# Prints a Markdown table (median and maximum runs to find; "—" when not found within the
# budget) and keeps every exploration under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3 4 5"}
BUDGET=${BUDGET:-5000}
MODES=${MODES:-"all twins byzzfuzz"}
OUT=${OUT:-out/mutation-table}
JOBS=${JOBS:-$(nproc)}
BUNDLED_SEEDS=${BUNDLED_SEEDS:-1000}
BFTSIM=${BFTSIM:-}
if [ -z "$BFTSIM" ]; then
  cargo build --release --bin bftsim >&2
  BFTSIM=./target/release/bftsim
fi
mkdir -p "$OUT"
mutations=${ONLY:-$(grep -ho 'mutation = "[a-z-]*"' scenarios/mut-*.toml | sed 's/.*"\(.*\)"/\1/' | sort -u)}

# first_run of the first finding in an explore.json, or nothing.
first_run() { grep -o '"first_run": [0-9]*' "$1" 2>/dev/null | head -1 | grep -o '[0-9]*$' || true; }

stats() { # median and max of the numbers on stdin; "—" for missing ones (counted as > budget)
  sort -n | awk -v budget="$BUDGET" '
    { v[NR] = $1 } END {
      n = NR; if (n == 0) { print "— | —"; exit }
      m = v[int((n + 1) / 2)]; mx = v[n]
      printf "%s | %s\n", (m > budget ? "> " budget : m), (mx > budget ? "> " budget : mx) }'
}

header="| mutation |"; sep="|---|"
for mode in $MODES; do header="$header $mode: median | $mode: max |"; sep="$sep---|---|"; done
header="$header bundled scenario: first seed |"; sep="$sep---|"
echo "$header"; echo "$sep"
for m in $mutations; do
  row="| \`$m\` |"
  for mode in $MODES; do
    values=""
    for s in $SEEDS; do
      dir="$OUT/$m/$mode-seed$s"; mkdir -p "$OUT/$m"
      mode_arg=(); [ "$mode" != all ] && mode_arg=(--mode "$mode")
      "$BFTSIM" explore --seed "$s" --runs "$BUDGET" --mutation "$m" "${mode_arg[@]}" --until-found \
        --shrink-runs 1 --max-findings 1 --jobs "$JOBS" --out "$dir" --quiet > "$dir.log" 2>&1 || true
      r=$(first_run "$dir/explore.json"); values="$values ${r:-$((BUDGET + 1))}"
    done
    row="$row $(echo $values | tr ' ' '\n' | stats) |"
  done
  first="not run"
  if [ "$BUNDLED_SEEDS" -gt 0 ]; then
    file=$(grep -l "mutation = \"$m\"" scenarios/mut-*.toml | head -1)
    first=$("$BFTSIM" run "$file" --seeds "$BUNDLED_SEEDS" --jobs "$JOBS" --out "$OUT/$m/run" --quiet 2>/dev/null \
      | grep -o 'seed [0-9]*' | head -1 | grep -o '[0-9]*' || true)
  fi
  row="$row ${first:-—} |"
  echo "$row"
done
