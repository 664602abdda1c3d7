#!/usr/bin/env python3
"""Log size, memory and restart time of a real bftsim-node cluster after many sessions.

Starts a local cluster (instant synthetic evaluator, loopback only), opens SESSIONS sessions
through the opener with at most WINDOW of them undecided, samples every node's on-disk state
(its data_dir) and resident memory (VmRSS) ten times along the way, then kills the node with
the largest data_dir with SIGKILL, restarts it with the same command and times how long it takes
to answer HTTP again (it replays its log before it listens). Everything it starts, it stops.

    cargo build --release -p node
    scripts/node-figures.py --agents 5 --sessions 100000
    scripts/node-figures.py --agents 31 --sessions 10000 --in-flight 2 --window 4

With --catch-up M it measures catch-up instead: it kills the last agent with SIGKILL before the
load, opens M sessions while it is down, restarts it and times how long it takes to answer HTTP,
to have applied every session the others applied (its /healthz "applied"), and to decide a new
session opened after that.

    scripts/node-figures.py --agents 5 --catch-up 1000 --out benchmarks/node-figures/catch-up-5.json

Prints one line per sample and a JSON summary (also written to --out when given). Standard
library only.
"""

import argparse
import re
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_base_port(count):
    """A base port with `count` free ports above it (checked by binding each)."""
    for _ in range(50):
        base = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    sys.exit("no free port range found")


class Client:
    """One keep-alive HTTP connection to one agent."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, timeout=60):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.conn.request(method, path, body=body, headers={"content-type": "application/json"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def on_term(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def applied(port):
    """The sessions an agent applied (its /healthz), or None while it does not answer."""
    try:
        _, body = Client(port).request("GET", "/healthz", timeout=2)
        return json.loads(body)["applied"]
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None


def catch_up(args, n, down, spawn, http_port, load_s):
    """Restarts agent `down` and times its catch-up (see the module documentation)."""
    target = max(applied(http_port(i)) or 0 for i in range(n) if i != down)
    t0 = time.time()
    spawn(down)
    answered = learned = None
    progress = []
    while learned is None:
        a = applied(http_port(down))
        now = time.time() - t0
        if a is not None and answered is None:
            answered = now
        if a is not None and (not progress or progress[-1][1] != a):
            progress.append((round(now, 2), a))
        if a is not None and a >= target:
            learned = now
        if now > 600:
            sys.exit(f"agent {down} stopped at {a} of {target}")
        time.sleep(0.02)
    c = Client(http_port(0))
    body = json.dumps({"query": "after catch-up", "candidates": ["alpha", "beta", "gamma"]})
    status, reply = c.request("POST", "/v1/sessions", body)
    if status != 201:
        sys.exit(f"POST after catch-up answered {status}")
    session = json.loads(reply)["session"]
    t1 = time.time()
    status, reply = Client(http_port(down)).request("GET", f"/v1/sessions/{session}?wait_ms=20000")
    if status != 200:
        sys.exit(f"agent {down} did not decide session {session}: {status} {reply[:200]!r}")
    return {
        "label": args.label, "agents": n, "missed": args.catch_up, "load_s": round(load_s, 1),
        "target_applied": target, "answered_http_s": round(answered, 2), "learned_all_s": round(learned, 2),
        "new_session_decided_ms": round((time.time() - t1) * 1000), "progress": progress[:: max(1, len(progress) // 20)],
    }


def percentiles(samples):
    """Nearest-rank p50 / p99 / max of client-side latencies, ms."""
    if not samples:
        return {}
    xs = sorted(samples)
    rank = lambda p: xs[max(0, min(len(xs) - 1, -(-len(xs) * p // 100) - 1))]  # noqa: E731
    return {"p50": round(rank(50), 1), "p99": round(rank(99), 1), "max": round(xs[-1], 1)}


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/bftsim-node")
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=100000)
    ap.add_argument("--in-flight", type=int, default=None,
                    help="the opener's max_in_flight (default: what init-cluster writes, the admission rule)")
    ap.add_argument("--fsync", choices=["on", "off"], default="on")
    ap.add_argument("--window", type=int, default=64, help="sessions submitted and not yet decided, at most")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=None, help="write the JSON summary here")
    ap.add_argument("--keep", action="store_true", help="keep the cluster directory")
    ap.add_argument("--catch-up", type=int, default=0, metavar="M",
                    help="measure the catch-up of an agent down while M sessions were decided")
    args = ap.parse_args()
    if args.catch_up:
        args.sessions = args.catch_up

    binary = os.path.abspath(args.binary)
    n = args.agents
    work = tempfile.mkdtemp(prefix=f"bftsim-figures-{n}-")
    base = free_base_port(2 * n)
    subprocess.run(
        [binary, "init-cluster", "--agents", str(n), "--base-port", str(base), "--out", work,
         "--synthetic-latency-ms", "0,0"],
        check=True, stdout=subprocess.DEVNULL)
    for i in range(n):
        path = os.path.join(work, f"agent-{i}.toml")
        with open(path) as f:
            text = f.read()
        if args.in_flight is not None:
            text = re.sub(r"max_in_flight = \d+", f"max_in_flight = {args.in_flight}", text)
        if args.fsync == "off":
            text = text.replace("fsync = true", "fsync = false")
        with open(path, "w") as f:
            f.write(text)
    procs = [None] * n

    def spawn(i):
        log = open(os.path.join(work, f"agent-{i}.out"), "ab")
        procs[i] = subprocess.Popen([binary, "run", "--config", os.path.join(work, f"agent-{i}.toml")],
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def stop_all():
        for p in procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()

    http_port = lambda i: base + n + i  # noqa: E731
    data_dir = lambda i: os.path.join(work, "data", f"agent-{i}")  # noqa: E731
    try:
        for i in range(n):
            spawn(i)
        # 31 processes starting on 2 busy cores take a while: 10 s per agent at most.
        deadline = time.time() + max(120, 10 * n)
        for i in range(n):
            c = Client(http_port(i))
            last = "no answer"
            while True:
                try:
                    status, reply = c.request("GET", "/healthz", timeout=2)
                    if status == 200:
                        break
                    last = f"{status} {reply[:300]!r}"
                except OSError as e:
                    last = str(e)
                if procs[i].poll() is not None or time.time() > deadline:
                    with open(os.path.join(work, f"agent-{i}.out"), errors="replace") as f:
                        tail = f.read()[-1500:]
                    sys.exit(f"agent {i} never became healthy (last /healthz: {last}; exit {procs[i].poll()}); "
                             f"its output ends:\n{tail}")
                time.sleep(0.1)

        down = n - 1
        if args.catch_up:
            procs[down].send_signal(signal.SIGKILL)
            procs[down].wait()
        samples = []
        lock = threading.Lock()
        state = {"submitted": 0, "decided": 0, "refused": 0, "failed": None}
        latencies = []  # client-side: POST sent to the decision received, ms
        # Where that time goes: the POST until its 201 (the session durable at the opener), the
        # opener's own open-to-decision time (the answer's latency_ms) and the deciding round.
        acks, decisions, rounds = [], [], {}
        every = max(1, args.sessions // args.samples)
        started = time.time()

        def sample():
            if args.catch_up:
                return
            sizes = [dir_bytes(data_dir(i)) for i in range(n)]
            rss = [rss_bytes(p.pid) for p in procs]
            s = {"decided": state["decided"], "seconds": round(time.time() - started, 1),
                 "disk_max": max(sizes), "disk_mean": sum(sizes) // n, "rss_max": max(rss), "rss_mean": sum(rss) // n}
            samples.append(s)
            print(json.dumps(s), flush=True)

        def worker():
            c = Client(http_port(0))
            body = None
            while True:
                with lock:
                    if state["submitted"] >= args.sessions or state["failed"]:
                        return
                    state["submitted"] += 1
                    k = state["submitted"]
                body = json.dumps({"query": f"figure question {k}", "candidates": ["alpha", "beta", "gamma"]})
                t_submit = time.time()
                try:
                    while True:
                        status, reply = c.request("POST", "/v1/sessions", body)
                        if status == 201:
                            t_ack = time.time()
                            break
                        if status in (429, 503):  # saturated (429, Retry-After) or the opener is busy: back off
                            with lock:
                                state["refused"] += 1
                            time.sleep(0.05)
                            continue
                        raise RuntimeError(f"POST answered {status}: {reply[:200]!r}")
                    session = json.loads(reply)["session"]
                    while True:
                        status, reply = c.request("GET", f"/v1/sessions/{session}?wait_ms=20000")
                        answer = json.loads(reply) if status == 200 else {}
                        if answer.get("certificate") is not None:
                            break
                except Exception as e:  # noqa: BLE001
                    with lock:
                        state["failed"] = f"session {k}: {e}"
                    return
                with lock:
                    state["decided"] += 1
                    latencies.append((time.time() - t_submit) * 1000.0)
                    acks.append((t_ack - t_submit) * 1000.0)
                    if isinstance(answer.get("latency_ms"), (int, float)):
                        decisions.append(float(answer["latency_ms"]))
                    r = str(answer.get("round"))
                    rounds[r] = rounds.get(r, 0) + 1
                    due = state["decided"] % every == 0
                if due:
                    sample()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.window)]
        for t in threads:
            t.start()
        while True:  # a timed join lets Ctrl-C and SIGTERM through
            alive = [t for t in threads if t.is_alive()]
            if not alive:
                break
            alive[0].join(0.5)
        if state["failed"]:
            sys.exit(f"load failed: {state['failed']}; see {work}")
        elapsed = time.time() - started
        time.sleep(3)  # followers finish the last sessions
        if args.catch_up:
            summary = catch_up(args, n, down, spawn, http_port, elapsed)
            print(json.dumps(summary, indent=1))
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(summary, f, indent=1)
            return
        sizes = [dir_bytes(data_dir(i)) for i in range(n)]
        rss = [rss_bytes(p.pid) for p in procs]
        largest = max(range(n), key=lambda i: sizes[i])
        procs[largest].send_signal(signal.SIGKILL)
        procs[largest].wait()
        t0 = time.time()
        spawn(largest)
        c = Client(http_port(largest))
        while True:
            try:
                c.request("GET", "/healthz", timeout=1)
                break
            except OSError:
                if time.time() - t0 > 600:
                    sys.exit("the restarted agent never answered")
                time.sleep(0.02)
        restart = time.time() - t0
        summary = {
            "label": args.label, "agents": n, "sessions": args.sessions, "in_flight": args.in_flight,
            "window": args.window, "seconds": round(elapsed, 1), "sessions_per_s": round(args.sessions / elapsed, 1),
            "refused_posts": state["refused"], "fsync": args.fsync,
            "latency_ms": percentiles(latencies),
            "post_ack_ms": percentiles(acks), "open_to_decision_ms": percentiles(decisions),
            "decided_in_round": rounds,
            "disk_bytes_max": max(sizes), "disk_bytes_mean": sum(sizes) // n,
            "rss_bytes_max": max(rss), "rss_bytes_mean": sum(rss) // n,
            "restart_agent": largest, "restart_data_bytes": sizes[largest], "restart_s": round(restart, 2),
            "samples": samples,
        }
        print(json.dumps(summary, indent=1))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(summary, f, indent=1)
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
