#!/usr/bin/env python3
"""An example judge for bftsim-node's `command` evaluator.

Reads one evaluation request (JSON) on stdin and writes one vote (JSON) on stdout.
It scores each candidate by the share of the query's words it contains, plus a small
preference for concise answers; a real judge would call a model here.

request: {"session": 7, "agent": 1, "specialization": "analyzer", "query": "...",
          "candidates": [{"id": 0, "text": "..."}, ...], "opened_ms": 0, "deadline_ms": 500}
vote:    {"scores": {"0": 0.91, "1": 0.40}, "confidence": 0.9, "reasoning": "..."}
         or {"abstain": "why"}
"""
import json
import re
import sys


def words(text):
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def main():
    request = json.load(sys.stdin)
    query = words(request["query"])
    candidates = request["candidates"]
    if not candidates:
        json.dump({"abstain": "no candidates"}, sys.stdout)
        return
    scores = {}
    for c in candidates:
        text = c["text"]
        overlap = len(query & words(text)) / max(1, len(query))
        brevity = 1.0 / (1.0 + len(text) / 200.0)
        scores[str(c["id"])] = round(min(1.0, 0.2 + 0.6 * overlap + 0.2 * brevity), 6)
    best = max(scores.values())
    runner_up = sorted(scores.values())[-2] if len(scores) > 1 else 0.0
    confidence = round(min(1.0, 0.75 + (best - runner_up)), 6)
    json.dump({"scores": scores, "confidence": confidence, "reasoning": "word overlap with the query"}, sys.stdout)


if __name__ == "__main__":
    main()
