#!/usr/bin/env python3
"""A bftsim-node client: submits a question with candidate answers and prints the decision.

Standard library only. Any node of the cluster accepts the submission (others forward it to
the opener); the decision can be read from any node. It backs off while the cluster answers
429 (saturated, Retry-After) and asks again while the decision is pending (202).

    python3 examples/client.py --node http://127.0.0.1:7005 \\
        "What is the capital of France?" "Paris is the capital of France." "Lyon"

Check the printed certificate offline with `bftsim-node verify --config cluster/agent-0.toml
--certificate decision.json` (--out decision.json writes it).
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def call(method, url, body=None, timeout=40):
    """(status, JSON body, headers) of one request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers


def submit(node, query, candidates, patience_s=60):
    """The session id, retrying while the cluster is saturated (429) or the opener is away (503)."""
    deadline = time.time() + patience_s
    while True:
        status, body, headers = call("POST", f"{node}/v1/sessions", {"query": query, "candidates": candidates})
        if status == 201:
            return body["session"]
        if status in (429, 503) and time.time() < deadline:
            time.sleep(float(headers.get("Retry-After") or 1))
            continue
        sys.exit(f"submission refused ({status}): {body.get('error', body)}")


def decision(node, session, patience_s=120):
    """The decision of `session`, asking again while it is pending (each ask waits up to 30 s)."""
    deadline = time.time() + patience_s
    while time.time() < deadline:
        status, body, _ = call("GET", f"{node}/v1/sessions/{session}?wait_ms=30000")
        if status == 200:
            return body
        if status != 202:
            sys.exit(f"session {session}: {status} {body.get('error', body)}")
    sys.exit(f"session {session} still pending after {patience_s} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default="http://127.0.0.1:7005", help="any node's HTTP address")
    ap.add_argument("--out", help="write the whole answer (with its certificate) here")
    ap.add_argument("query")
    ap.add_argument("candidates", nargs="+")
    args = ap.parse_args()
    session = submit(args.node, args.query, args.candidates)
    d = decision(args.node, session)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(d, f)
    chosen = d.get("chosen_text") if d.get("outcome") == "decided" else None
    print(f"session {session}: {d['outcome']}" + (f": {chosen!r}" if chosen else "")
          + f" (agreement {d.get('agreement')}, round {d.get('round')}, {d.get('latency_ms')} ms)")


if __name__ == "__main__":
    main()
