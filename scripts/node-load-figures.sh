#!/usr/bin/env bash
# The load figures of docs/node.md ("Load"): a 31-agent cluster from init-cluster's defaults
# (the admission rule) under 1,000 sessions with 16 in flight at the client, and 5 agents with
# fsync at 1 and 16 in flight. Release build, loopback, instant synthetic evaluator; results in
# benchmarks/node-figures/load-*.json (client-side latency POST → decision, sessions/s, max
# data directory and RSS per node). Run from the repository root:
#   scripts/node-load-figures.sh            # the full set (about 10 minutes on 2 idle cores)
#   SESSIONS31=300 SESSIONS5=500 scripts/node-load-figures.sh   # a shorter set
#   ONLY=31 scripts/node-load-figures.sh    # only the 31-agent run (ONLY=5: only the 5-agent ones)
# Each run is preceded by `uptime`: the machine's load belongs next to every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
nice cargo build --release -p node --jobs 2
out=benchmarks/node-figures
s31=${SESSIONS31:-1000}
s5=${SESSIONS5:-1000}
if [ "${ONLY:-all}" != 5 ]; then
  echo "load before the 31-agent run: $(uptime)"
  nice python3 scripts/node-figures.py --agents 31 --sessions "$s31" --window 16 --samples 5 \
    --label "31 agents, init-cluster defaults, 16 in flight" --out "$out/load-31-w16.json"
fi
[ "${ONLY:-all}" = 31 ] && exit 0
echo "load before the 5-agent runs: $(uptime)"
nice python3 scripts/node-figures.py --agents 5 --sessions "$s5" --window 1 --samples 5 \
  --label "5 agents, fsync, 1 in flight" --out "$out/load-5-w1.json"
echo "load before the 16-in-flight run: $(uptime)"
nice python3 scripts/node-figures.py --agents 5 --sessions "$s5" --window 16 --samples 5 \
  --label "5 agents, fsync, 16 in flight" --out "$out/load-5-w16.json"
echo "load after: $(uptime)"
