#!/usr/bin/env bash
# A mutation score nobody tuned (issue 16 item 3; docs/mutations.md, "A mutation score nobody
# tuned"). cargo-mutants (`cargo install --locked cargo-mutants`) mutates the protocol and the
# validation, quorum, signature and wire-decoding code it calls; each mutant is judged by
#   explore:    sim/tests/mutants.rs, the default `bftsim explore` in-process at master seed
#               $SEED until its first finding or $RUNS runs (the run of the finding is recorded,
#               so the table splits "within 500" from "within 2,000");
#   cargo-test: the project's own fast tests of consensus-core (`cargo test -p consensus-core
#               --lib --test it`), to say what explore adds.
# Not in CI (hours): a benchmark. Results under $OUT (committed): list.json (every mutant
# cargo-mutants generates in consensus-core, one a line), set.txt (the set), sample.txt (what is measured),
# outcomes-<pass>.jsonl (append-only: a measured mutant is never run again, so any interruption
# resumes), table.md, logs/ (the shards' logs).
#
#   scripts/mutants.sh list                          # write list.json, set.txt, sample.txt
#   SAMPLE=250 SAMPLE_SEED=2026 scripts/mutants.sh list
#   scripts/mutants.sh run --shard 0/2 &             # measure shard 0 of 2 (resumable)
#   scripts/mutants.sh run --shard 1/2 &
#   scripts/mutants.sh table                         # OUT/table.md from the ledgers
#   scripts/mutants.sh recommit                      # measure the sample again on HEAD
#
# A new commit (the explorer or its oracle changed): `recommit` keeps the sample and the ledgers,
# saves the old commit's table as table-<commit>.md and records HEAD in OUT/commit. Ledger lines
# carry their commit; only those of OUT/commit count (table) or are skipped as measured (run), so
# every sampled mutant is measured again and old outcomes are never mixed with new ones. It
# refuses when a sampled name no longer exists at HEAD (consensus-core's lines moved: start a
# fresh OUT with `list`). OUT/first.txt (optional) names sampled mutants to measure first.
#
# Environment: SAMPLE (0: the whole set), SAMPLE_SEED, SEED (explore's master seed, 1),
# RUNS (2000), PASSES ("explore cargo-test"), BATCH (most mutants per cargo-mutants call, 8),
# TIMEOUT / BUILD_TIMEOUT (seconds per test / build of one mutant), OUT (benchmarks/mutants),
# WORK (where each shard keeps its copy of the sources and its target/: target/mutants-work).
# The sources measured are those of the commit `list` recorded (OUT/commit), extracted with
# `git archive` into the shard's copy, so the worktree can change meanwhile and the names in
# the ledgers keep their line numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-benchmarks/mutants}
WORK=${WORK:-target/mutants-work}
SAMPLE=${SAMPLE:-0}
SAMPLE_SEED=${SAMPLE_SEED:-2026}
SEED=${SEED:-1}
RUNS=${RUNS:-2000}
PASSES=${PASSES:-"explore cargo-test"}
BATCH=${BATCH:-8}
TIMEOUT=${TIMEOUT:-480}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1200}
PY="python3 $ROOT/scripts/mutants.py"
# No --cap-lints: cargo-mutants would then set CARGO_ENCODED_RUSTFLAGS, which replaces
# .cargo/config.toml's `--cfg madsim` (the harness would compile to nothing; `record` refuses
# a "missed" mutant whose log shows no exploration).

command=${1:-}
shift || true
shard=0/1
while [ $# -gt 0 ]; do
  case $1 in
    --shard) shard=$2; shift 2 ;;
    --shard=*) shard=${1#--shard=}; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
k=${shard%/*}; n=${shard#*/}
mkdir -p "$OUT/logs"

cmd_list() {
  if [ -f "$OUT/sample.txt" ]; then
    echo "$OUT/sample.txt exists (measurements resume on it); remove $OUT to start over" >&2
    exit 2
  fi
  if ! git diff --quiet HEAD -- consensus-core sim Cargo.toml Cargo.lock; then
    echo "commit first: the measured sources are those of a commit" >&2
    exit 2
  fi
  git rev-parse HEAD > "$OUT/commit"
  cargo mutants --list --json --package consensus-core > "$OUT/list.json"
  $PY strip "$OUT/list.json"
  $PY select "$OUT/list.json" 0 0 > "$OUT/set.txt"
  $PY select "$OUT/list.json" "$SAMPLE" "$SAMPLE_SEED" > "$OUT/sample.txt"
  printf 'sample=%s sample_seed=%s seed=%s runs=%s\n' "$SAMPLE" "$SAMPLE_SEED" "$SEED" "$RUNS" > "$OUT/params"
  echo "$(wc -l < "$OUT/set.txt") mutants in the set, $(wc -l < "$OUT/sample.txt") to measure (commit $(cat "$OUT/commit"))"
}

# The shard's copy of the recorded commit's sources (its target/ persists across calls, so a
# mutant recompiles only what it touches).
prepare() {
  local dir=$1 commit
  commit=$(cat "$OUT/commit")
  if [ "$(cat "$dir/.commit" 2>/dev/null)" != "$commit" ]; then
    mkdir -p "$dir/target"
    # Outcomes an interrupted call left are of the copy's old commit: never recorded for this one.
    rm -rf "$dir"/out-*
    # Every workspace crate rebuilds for a new commit anyway; an incremental cache left by a
    # build that was killed can fail the link ("undefined hidden symbol"), which cargo-mutants
    # would record as an unviable mutant.
    rm -rf "$dir/target/mutants/incremental"
    git archive "$commit" | tar -x -C "$dir"
    # Inside this worktree, cargo also reads the worktree's .cargo/config.toml and would pass
    # `--cfg madsim` twice: a different fingerprint, every dependency rebuilt. The copy's own
    # (identical) file goes, so the worktree's `mutants` dependencies, copied, are reused.
    case $dir in "$ROOT"/*) rm -f "$dir/.cargo/config.toml" ;; esac
    if [ -d "$ROOT/target/mutants" ] && [ ! -d "$dir/target/mutants" ]; then
      cp -a "$ROOT/target/mutants" "$dir/target/"
    fi
    echo "$commit" > "$dir/.commit"
  else
    # Undo a mutation an interrupted cargo-mutants may have left in place.
    git archive "$commit" consensus-core/src | tar -x -C "$dir"
  fi
}

pass_args() {
  case $1 in
    # --cargo-arg also reaches the build phase (`cargo test --no-run`), which would otherwise
    # build every test target of the package for every mutant.
    explore) echo "--test-package sim --cargo-arg=--test=mutants -- -- --ignored --nocapture" ;;
    cargo-test) echo "--test-package consensus-core --cargo-arg=--lib --cargo-arg=--test=it" ;;
    *) echo "unknown pass $1" >&2; exit 2 ;;
  esac
}

cmd_run() {
  [ -f "$OUT/sample.txt" ] || cmd_list
  local dir="$ROOT/$WORK/shard-$k-of-$n" pass names batch regexes log
  log="$OUT/logs/shard-$k-of-$n.log"
  prepare "$dir"
  for pass in $PASSES; do
    # Outcomes of a call that was interrupted are kept (cargo-mutants writes them as it goes).
    [ -d "$dir/out-$pass/mutants.out" ] && $PY record "$pass" "$dir/out-$pass/mutants.out" "$OUT/outcomes-$pass.jsonl" "$(cat "$OUT/commit")" | tee -a "$log"
    mapfile -t names < <($PY todo "$OUT/sample.txt" "$k" "$n" "$OUT/outcomes-$pass.jsonl")
    echo "$(date -u +%FT%TZ) shard $shard pass $pass: ${#names[@]} to measure" | tee -a "$log"
    # One call per file (cargo-mutants ignores --re for its "delete field" mutants but not
    # --file), at most $BATCH mutants each, in sample order.
    while [ ${#names[@]} -gt 0 ]; do
      file=${names[0]%%:*}
      batch=() rest=()
      for name in "${names[@]}"; do
        if [ "${name%%:*}" = "$file" ] && [ ${#batch[@]} -lt "$BATCH" ]; then batch+=("$name"); else rest+=("$name"); fi
      done
      names=("${rest[@]}")
      regexes=()
      for name in "${batch[@]}"; do regexes+=(--re "$($PY regex "$name")"); done
      prepare "$dir"
      rm -rf "$dir/out-$pass"
      echo "$(date -u +%FT%TZ) $pass: ${#batch[@]} of $file (${#names[@]} left)" >> "$log"
      # shellcheck disable=SC2046
      (cd "$dir" && MUTANTS_SEED=$SEED MUTANTS_RUNS=$RUNS MUTANTS_JOBS=1 \
        nice cargo mutants --in-place --baseline=skip --no-shuffle --package consensus-core \
        --profile mutants --timeout "$TIMEOUT" --build-timeout "$BUILD_TIMEOUT" \
        --output "$dir/out-$pass" --file "$file" "${regexes[@]}" $(pass_args "$pass")) >> "$log" 2>&1 || true
      $PY record "$pass" "$dir/out-$pass/mutants.out" "$OUT/outcomes-$pass.jsonl" "$(cat "$OUT/commit")" | tee -a "$log"
      rm -rf "$dir/out-$pass"
    done
  done
}

cmd_recommit() {
  [ -f "$OUT/sample.txt" ] || { echo "no $OUT/sample.txt: run list first" >&2; exit 2; }
  if ! git diff --quiet HEAD -- consensus-core sim Cargo.toml Cargo.lock; then
    echo "commit first: the measured sources are those of a commit" >&2
    exit 2
  fi
  local old new fresh
  old=$(cat "$OUT/commit")
  new=$(git rev-parse HEAD)
  [ "$old" != "$new" ] || { echo "$OUT/commit is already HEAD ($new)" >&2; exit 0; }
  fresh=$(mktemp)
  cargo mutants --list --json --package consensus-core > "$fresh"
  $PY strip "$fresh"
  if ! $PY select "$fresh" 0 0 | sort | comm -13 - <(sort "$OUT/sample.txt") | grep -q .; then
    cmd_table > "$OUT/table-${old:0:12}.md"
    echo "$new" > "$OUT/commit"
    echo "measuring the sample again at $new (outcomes of ${old:0:12} kept, labelled, not counted)"
  else
    echo "sampled mutants no longer exist at HEAD (lines moved): start a fresh OUT with list" >&2
    rm -f "$fresh"
    exit 2
  fi
  rm -f "$fresh"
}

cmd_table() {
  $PY table "$OUT" | tee "$OUT/table.md"
}

case $command in
  list) cmd_list ;;
  run) cmd_run ;;
  table) cmd_table ;;
  recommit) cmd_recommit ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
