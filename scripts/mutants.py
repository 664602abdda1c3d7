#!/usr/bin/env python3
"""Bookkeeping of scripts/mutants.sh (a mutation score nobody tuned, docs/mutations.md).

Subcommands (all paths explicit, nothing global):
  strip LIST.json                            drop the diffs of cargo-mutants' --list --json
                                             (one mutant a line: name, file, function, genre)
  select LIST.json SAMPLE SAMPLE_SEED        the mutant set of the docs, optionally a seeded
                                             random sample of it: one mutant name a line
  todo SAMPLE.txt K N LEDGER...              names of shard K of N not yet in every ledger
  regex NAME                                 an exact-match regex for cargo-mutants --re
  record PASS MUTANTS_OUT LEDGER COMMIT      append the outcomes of one cargo-mutants batch
  table OUT_DIR                              the Markdown table (with the Wilson interval)

A ledger (OUT/outcomes-<pass>.jsonl) is append-only: a mutant measured once is never run again,
so an interrupted run resumes where it stopped.
"""

import json
import math
import random
import re
import sys
from pathlib import Path

# The set, decided from the code (docs/mutations.md, "A mutation score nobody tuned"): the whole
# protocol state machine, and the validation, quorum, signature and wire-decoding code it calls.
PROTOCOL = "consensus-core/src/protocol/"
# Instrumentation only: it records which rules fired and never changes what an agent does.
EXCLUDED_FILES = {"consensus-core/src/protocol/coverage.rs"}
# Outside protocol/, only the functions the protocol (and the simulator's agents) call.
CALLED = {
    "consensus-core/src/wire.rs": None,  # encoding, signing bytes, decoding and bounds: all
    "consensus-core/src/quorum.rs": {"f_max", "quorum", "check"},
    # The simulator's signature scheme (the node's Ed25519 is never run by the explorer).
    # Signatures travel inside wire frames: their (de)serialisation is wire decoding too.
    "consensus-core/src/sign.rs": {
        "mac",
        "derive_secret",
        "sim_committee",
        "<impl Signer for SimSigner>::sign",
        "<impl Signer for SimSigner>::agent",
        "<impl Verifier for SimKeyring>::verify",
        "<impl Serialize for Signature>::serialize",
        "<impl Deserialize<'de> for Signature>::deserialize",
        "<impl Deserialize<'de> for Signature>::deserialize::<impl Visitor<'de> for SigVisitor>::visit_bytes",
        "<impl Deserialize<'de> for Signature>::deserialize::<impl Visitor<'de> for SigVisitor>::visit_seq",
    },
}


def function_name(m):
    f = m.get("function") or ""
    return f if isinstance(f, str) else f.get("function_name", "")


def in_set(m):
    path = m["file"]
    if path in EXCLUDED_FILES or "/tests/" in path or path.endswith("/tests.rs"):
        return False
    if path.startswith(PROTOCOL):
        return True
    if path in CALLED:
        allowed = CALLED[path]
        return allowed is None or function_name(m) in allowed
    return False


def cmd_strip(list_json):
    """cargo-mutants' --list --json without the diffs (the names say what each mutant does)."""
    mutants = json.loads(Path(list_json).read_text())
    keep = ("name", "file", "genre", "replacement")
    rows = [{**{k: m.get(k) for k in keep}, "function": function_name(m)} for m in mutants]
    Path(list_json).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_list(list_json):
    return [json.loads(l) for l in Path(list_json).read_text().splitlines() if l.strip()]


def cmd_select(list_json, sample, seed):
    mutants = read_list(list_json)
    names = sorted({m["name"] for m in mutants if in_set(m)})
    sample = int(sample)
    if sample:
        random.Random(int(seed)).shuffle(names)
        names = names[:sample]
    print("\n".join(names))


def measured_commit(ledger):
    """The commit a ledger's outcomes count for: OUT/commit, beside the ledger. Outcomes of
    other commits stay in the append-only ledger, labelled by their `commit`, and are neither
    counted nor taken as measured (a mutant is measured again on a new commit)."""
    c = Path(ledger).parent / "commit"
    return c.read_text().strip() if c.exists() else None


def ledger_rows(ledger):
    p = Path(ledger)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def measured(ledgers):
    done = set()
    for ledger in ledgers:
        commit = measured_commit(ledger)
        done |= {r["name"] for r in ledger_rows(ledger) if commit is None or r.get("commit") == commit}
    return done


def cmd_todo(sample_txt, k, n, *ledgers):
    names = [l for l in Path(sample_txt).read_text().splitlines() if l.strip()]
    k, n = int(k), int(n)
    # OUT/first.txt: sampled names measured before the rest (each shard takes its own share of
    # them, by their place in the sample as always).
    first_txt = Path(sample_txt).parent / "first.txt"
    first = [l for l in first_txt.read_text().splitlines() if l.strip()] if first_txt.exists() else []
    order = {name: (0 if name in first else 1, i) for i, name in enumerate(names)}
    # Each ledger is one pass: a name is to do while some pass has not measured it.
    done_by_all = None
    for ledger in ledgers:
        d = measured([ledger])
        done_by_all = d if done_by_all is None else done_by_all & d
    done_by_all = done_by_all or set()
    for name in sorted(names, key=lambda m: order[m]):
        if order[name][1] % n == k and name not in done_by_all:
            print(name)


def cmd_regex(name):
    # regex_syntax::escape's set of meta characters.
    print("^" + re.sub(r"([\\.+*?()|\[\]{}^$#&\-~])", r"\\\1", name) + "$")


FOUND = re.compile(r"MUTANTS-FOUND run=(\d+) invariant=(\S+)")
CLEAN = re.compile(r"MUTANTS-CLEAN runs=(\d+)")


def phase_seconds(outcome, phase):
    for p in outcome.get("phase_results", []):
        if p.get("phase") == phase:
            d = p.get("duration", 0)
            return round(d if isinstance(d, (int, float)) else d.get("secs", 0) + d.get("nanos", 0) / 1e9, 1)
    return None


def cmd_record(pass_name, mutants_out, ledger, commit):
    out = Path(mutants_out)
    if not (out / "outcomes.json").exists():
        print(f"no outcomes in {out}: cargo-mutants did not start (see the shard's log)")
        return
    outcomes = json.loads((out / "outcomes.json").read_text())
    known = measured([ledger])
    # cargo-mutants ignores `--re` for its "delete field" mutants: a batch may judge some that
    # are not sampled. They are not measurements of the sample: not recorded.
    sample_path = Path(ledger).parent / "sample.txt"
    sampled = set(sample_path.read_text().splitlines()) if sample_path.exists() else None
    lines = []
    for o in outcomes.get("outcomes", []):
        scenario = o.get("scenario")
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            continue
        m = scenario["Mutant"]
        if m["name"] in known:
            continue
        if sampled is not None and m["name"] not in sampled:
            print(f"not recorded, not in the sample: {m['name']}")
            continue
        log = (out / o["log_path"]).read_text(errors="replace") if o.get("log_path") else ""
        found = FOUND.search(log)
        clean = CLEAN.search(log)
        panics = [l.strip() for l in log.splitlines() if "panicked at" in l][:2]
        summary = o.get("summary")
        if summary == "Timeout" and phase_seconds(o, "Test") is None:
            # The build ran out of BUILD_TIMEOUT (a shard's first, cold build on a loaded
            # machine): the mutant was never judged, so it stays to do.
            print(f"not recorded, its build timed out: {m['name']}")
            continue
        if pass_name == "explore" and summary == "MissedMutant" and not clean:
            # The test passed without exploring (e.g. built without `--cfg madsim`, so the
            # harness compiled to nothing): not a measurement.
            print(f"not recorded, the explorer did not run: {m['name']}")
            continue
        lines.append(
            json.dumps(
                {
                    "name": m["name"],
                    "file": m["file"],
                    "function": function_name(m),
                    "pass": pass_name,
                    "outcome": summary,
                    "found_run": int(found.group(1)) if found else None,
                    "invariant": found.group(2) if found else None,
                    "clean_runs": int(clean.group(1)) if clean else None,
                    "panics": panics if not found else [],
                    "build_s": phase_seconds(o, "Build"),
                    "test_s": phase_seconds(o, "Test"),
                    "commit": commit,
                },
                sort_keys=True,
            )
        )
    with open(ledger, "a") as f:
        for line in lines:
            f.write(line + "\n")
    print(f"recorded {len(lines)} outcomes of {pass_name} in {ledger}")


def wilson(k, n, z=1.959964):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def load(ledger):
    """The ledger's outcomes of the measured commit (OUT/commit), by name."""
    commit = measured_commit(ledger)
    return {r["name"]: r for r in ledger_rows(ledger) if commit is None or r.get("commit") == commit}


def earlier(ledger):
    """How many outcomes of other commits than OUT/commit the ledger keeps, per commit."""
    commit = measured_commit(ledger)
    counts = {}
    for r in ledger_rows(ledger):
        if r.get("commit") != commit:
            counts[r.get("commit")] = counts.get(r.get("commit"), 0) + 1
    return counts


def pct(k, n):
    return "–" if n == 0 else f"{100 * k / n:.1f}%"


def cmd_table(out_dir):
    out = Path(out_dir)
    sample = [l for l in (out / "sample.txt").read_text().splitlines() if l.strip()]
    explore = load(out / "outcomes-explore.jsonl")
    tests = load(out / "outcomes-cargo-test.jsonl")
    classes = {}
    cpath = out / "classification.json"
    if cpath.exists():
        classes = json.loads(cpath.read_text())
    generated = len([l for l in (out / "set.txt").read_text().splitlines() if l.strip()])
    done = [n for n in sample if n in explore]
    unviable = [n for n in done if explore[n]["outcome"] == "Unviable"]
    viable = [n for n in done if n not in unviable]
    timeout = [n for n in viable if explore[n]["outcome"] == "Timeout"]
    caught = [n for n in viable if explore[n]["outcome"] == "CaughtMutant"]
    at500 = [n for n in caught if (explore[n]["found_run"] or 10**9) <= 500]
    at2000 = [n for n in caught if (explore[n]["found_run"] or 10**9) <= 2000]
    # Caught, but not by a finding of the oracle (the test binary crashed or failed otherwise).
    other = [n for n in caught if explore[n]["found_run"] is None]
    missed = [n for n in viable if explore[n]["outcome"] == "MissedMutant"]
    equivalent = [n for n in missed if classes.get(n, {}).get("class") == "equivalent"]
    non_eq = [n for n in viable if n not in equivalent]
    by_explore = at2000 + other + timeout
    tested = [n for n in viable if n in tests and tests[n]["outcome"] != "Unviable"]
    t_caught = [n for n in tested if tests[n]["outcome"] in ("CaughtMutant", "Timeout")]
    only_explore = [n for n in tested if n in by_explore and n not in t_caught]
    only_tests = [n for n in tested if n not in by_explore and n in t_caught]
    lo, hi = wilson(len(by_explore), len(non_eq))
    rows = [
        ("mutants generated (the set)", generated),
        ("sampled", len(sample)),
        ("measured so far", len(done)),
        ("unviable (do not build)", len(unviable)),
        ("viable", len(viable)),
        (f"caught by `cargo test -p consensus-core` alone (of {len(tested)} viable tested)", f"{len(t_caught)} ({pct(len(t_caught), len(tested))})"),
        ("caught by explore within 500 runs", f"{len(at500)} ({pct(len(at500), len(viable))})"),
        ("caught by explore within 2,000 runs", f"{len(at2000)} ({pct(len(at2000), len(viable))})"),
        ("caught by explore otherwise (test failed without a finding)", len(other)),
        ("timeout (the mutant hangs the explorer)", len(timeout)),
        (f"caught by explore, missed by `cargo test` (of {len(tested)})", len(only_explore)),
        (f"caught by `cargo test`, missed by explore (of {len(tested)})", len(only_tests)),
        ("missed by explore", len(missed)),
        ("  of them equivalent", len(equivalent)),
        ("  of them real gaps or unclassified", len(missed) - len(equivalent)),
        (
            "explore's score on the non-equivalent (finding, crash or hang, ≤ 2,000 runs)",
            f"{len(by_explore)} / {len(non_eq)} = {pct(len(by_explore), len(non_eq))}, 95% Wilson [{100 * lo:.1f}%, {100 * hi:.1f}%]",
        ),
    ]
    commit = measured_commit(out / "outcomes-explore.jsonl")
    print(f"Commit measured: `{commit}` (benchmarks/mutants/commit).")
    for ledger in ("outcomes-explore.jsonl", "outcomes-cargo-test.jsonl"):
        for c, k in sorted(earlier(out / ledger).items()):
            print(f"Not counted here: {k} outcome(s) of {ledger} measured at the earlier commit `{c}` "
                  f"(kept in the ledger; their table: table-{str(c)[:12]}.md).")
    print()
    print("| | mutants |")
    print("|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print()
    print("Missed by explore:")
    print()
    print("| mutant | class | why |")
    print("|---|---|---|")
    for n in missed:
        c = classes.get(n, {})
        t = tests.get(n, {}).get("outcome", "not run")
        print(f"| `{cell(n)}` | {c.get('class', 'unclassified')} | {cell(c.get('why', ''))} (cargo test: {t}) |")
    runs = sorted(explore[n]["found_run"] for n in at2000)
    if runs:
        print()
        print(f"Runs to the first finding of the {len(runs)} caught: median {runs[len(runs) // 2]}, max {runs[-1]}; "
              f"invariants: {', '.join(f'{k} {v}' for k, v in sorted(invariants(explore, at2000).items()))}.")


def invariants(explore, names):
    counts = {}
    for n in names:
        counts[explore[n]["invariant"]] = counts.get(explore[n]["invariant"], 0) + 1
    return counts


def cell(text):
    """A Markdown table cell: a pipe would end it."""
    return text.replace("|", "\\|")


COMMANDS = {"strip": cmd_strip, "select": cmd_select, "todo": cmd_todo, "regex": cmd_regex, "record": cmd_record, "table": cmd_table}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
