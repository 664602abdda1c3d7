//! The Exploration section, from an `explore.json` fixture with a space-time diagram.

use std::fs;

use reports::spacetime::{render_svg, Diagram, DiagramEvent, EventKind, Lane};
use reports::{generate, ReportOptions};
use serde_json::json;

use crate::fixtures::{record, temp_dir, write_input};

fn explore_json() -> serde_json::Value {
    json!({
        "master_seed": 42, "runs": 5000, "jobs": 2, "elapsed_ms": 25_000,
        "envelope": "scenarios/envelope.toml", "mutation": "no-locking",
        "modes": {"swarm": 3000, "twins": 1000, "byzzfuzz": 1000},
        "coverage": [
            {"feature": "partition", "runs": 2100, "violations": 4},
            {"feature": "byzantine.equivocate", "runs": 1700, "violations": 0}
        ],
        "findings": [
            {"id": "F1", "invariant": "agreement", "location": "protocol::session L28 (prevote without a lock)",
             "first_run": 311, "hits": 4, "scenario": "findings/F1.min.toml", "seed": 977,
             "reproduce": "bftsim reproduce out/findings/F1.min.toml --seed 977",
             "size_before": 38, "size_after": 7, "lines": 19, "diagram": "findings/F1.svg",
             "detail": "agents 0 and 2 decided different candidates (1 and 2) for session 0"},
            {"id": "F2", "invariant": "liveness", "location": "runner", "first_run": 4000, "hits": 1,
             "scenario": "findings/F2.min.toml", "seed": 5, "reproduce": "bftsim reproduce out/findings/F2.min.toml --seed 5",
             "size_before": 20, "size_after": 20, "lines": 12, "diagram": "findings/missing.svg", "detail": ""}
        ],
        "interrupted": true
    })
}

fn diagram() -> String {
    let lanes = (0..3).map(|id| Lane { id, label: format!("agent {id}"), honest: id != 2 }).collect();
    let events = vec![DiagramEvent {
        time_ms: 20,
        kind: EventKind::Deliver,
        agent: Some(1),
        peer: Some(0),
        label: "proposal round 0".into(),
        matched_send_ms: Some(10),
        ..Default::default()
    }];
    render_svg(&Diagram {
        title: "F1".into(),
        agents: lanes,
        events,
        violation: Some((30, Some(0), "agreement".into())),
        ..Default::default()
    })
}

fn write_exploration(dir: &std::path::Path) {
    fs::create_dir_all(dir.join("findings")).expect("findings dir");
    fs::write(dir.join("explore.json"), explore_json().to_string()).expect("explore.json");
    fs::write(dir.join("findings/F1.svg"), diagram()).expect("diagram");
}

#[test]
fn exploration_section_shows_coverage_findings_and_the_diagram() {
    let input = write_input("explore-in", &[record("baseline", 0, [4, 4, 4, 0, 0, 0, 0], json!({}))], None);
    write_exploration(&input);
    let out = temp_dir("explore-out");
    let output = generate(&input, &out, &ReportOptions::default()).expect("report");
    let html = fs::read_to_string(&output.html).expect("html");
    let md = fs::read_to_string(&output.markdown).expect("md");
    for needle in [
        "Exploration",
        "5000 runs in 25 s (200 runs per second on 2 threads) from master seed 42",
        "no-locking",
        "byzantine.equivocate",
        "Finding F1: agreement",
        "protocol::session L28 (prevote without a lock)",
        "First hit at run 311",
        "findings/F1.min.toml",
        "19 lines; size 38 before shrinking, 7 after",
        "interrupted",
        "findings/missing.svg",
        "could not be read",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    // The command names the shrunk file from where the report was made, not from where
    // `explore` ran (explore.json's own `reproduce`).
    let command = format!("bftsim reproduce {}/findings/F1.min.toml --seed 977", input.display());
    assert!(md.contains(&command), "report.md lacks {command:?}");
    // The first screen names the planted mutation first and judges the checker, not the vote.
    let first_screen: String = md.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(first_screen.contains("**What ran:** the planted mutation `no-locking`"), "{first_screen}");
    assert!(first_screen.contains("The checker found the planted bug"), "{first_screen}");
    assert!(first_screen.contains("broke an invariant in 5 of 5000 runs"), "{first_screen}");
    assert!(!md.contains("The vote broke"), "a planted mutation is not the vote breaking");
    assert!(md.contains("![Space-time diagram of finding F1](figures/explore-f1.svg)"));
    let copied = out.join("figures/explore-f1.svg");
    assert_eq!(fs::read_to_string(&copied).expect("diagram copied"), diagram());
    assert!(output.figures.contains(&copied), "the copied diagram is listed");
    let svg_figures = output.figures.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")).count();
    assert_eq!(html.matches("<img src=\"data:image/svg+xml;base64,").count(), svg_figures, "diagram inline too");
}

#[test]
fn an_exploration_without_runs_is_a_report_of_its_own() {
    let input = temp_dir("explore-only-in");
    write_exploration(&input);
    let out = temp_dir("explore-only-out");
    let output = generate(&input, &out, &ReportOptions::default()).expect("report without runs.jsonl");
    let md = fs::read_to_string(&output.markdown).expect("md");
    assert!(md.contains("Finding F1: agreement") && !md.contains("nothing to show"), "{md}");
    assert_eq!(output.figures, vec![out.join("figures/explore-f1.svg")]);
}

/// A generated run of the correct protocol's exploration, as `bftsim explore` records it.
fn generated(
    mode: &str,
    index: u64,
    network: &str,
    families: serde_json::Value,
    wrong: serde_json::Value,
) -> serde_json::Value {
    record(
        &format!("explore-{mode}"),
        1000 + index,
        [6, 6, 5, 0, 0, 0, 0],
        json!({"params": {"explore.master_seed": "4242", "explore.index": index.to_string(), "explore.mode": mode,
                          "byzantine": "equivocate", "agents": "4"},
               "agents": 4, "byzantine": [3], "influenced": 1, "network": network, "families": families,
               "wrong_by_cause": wrong}),
    )
}

/// An exploration's report: it names the correct protocol, places each run by its own network
/// condition, splits wrong decisions by cause and margin, groups runs by fault family, never
/// mistakes the bookkeeping parameters for a sweep, and replays a run without a file of its own
/// with `--emit` first.
#[test]
fn an_exploration_report_says_what_ran_and_splits_wrong_decisions_by_cause() {
    let byzantine = json!({"honest": 0, "byzantine": 1, "unjudged": 0, "beyond_bound": 0,
                           "by_margin": [{"margin": 1, "honest": 0, "byzantine": 1, "unjudged": 0}]});
    let honest = json!({"honest": 1, "byzantine": 0, "unjudged": 0, "beyond_bound": 0,
                        "by_margin": [{"margin": -2, "honest": 1, "byzantine": 0, "unjudged": 0}]});
    let mut runs = [
        generated("swarm", 0, "partition", json!(["message loss", "partition", "byzantine: equivocate"]), byzantine),
        generated("twins", 1, "message loss", json!(["message loss", "round partitions"]), honest.clone()),
        generated("byzzfuzz", 2, "no network faults", json!(["message tampering"]), honest),
    ];
    // The twins run has the most wrong decisions: the first the report names.
    runs[1]["correct"] = json!(4);
    let input = write_input("explore-generated", &runs, None);
    let mut summary = explore_json();
    summary["mutation"] = json!("none");
    summary["findings"] = json!([]);
    summary["master_seed"] = json!(4242);
    fs::write(input.join("explore.json"), summary.to_string()).expect("explore.json");
    fs::create_dir_all(input.join("runs")).expect("runs dir");
    fs::write(input.join("runs/1.toml"), "").expect("a failing run's file");
    let out = temp_dir("explore-generated-out");
    let output = generate(&input, &out, &ReportOptions::default()).expect("report");
    let md = fs::read_to_string(&output.markdown).expect("md");
    let first_screen: String = md.lines().take(14).collect::<Vec<_>>().join("\n");
    assert!(
        first_screen.contains("**What ran:** the correct protocol, explored by `bftsim explore` from master seed 4242")
    );
    assert!(first_screen.contains("**Decision quality:**") && first_screen.contains("caused by the Byzantine agents"));
    for needle in [
        "Decision quality: wrong decisions by cause",
        "By honest margin",
        "Outcomes by fault family",
        "`round partitions`",
        "`byzantine: equivocate`",
        "No Byzantine-caused wrong decision exceeded the influence bound",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    assert!(!md.contains("Sweep explore"), "explore.* parameters are bookkeeping, not sweep axes");
    assert!(!md.contains("<explore") && !md.contains("--set explore."), "no placeholder, no bogus --set");
    let dir = input.display();
    assert!(md.contains(&format!("bftsim reproduce {dir}/runs/1.toml --seed 1001")), "the written file is replayed");
    let two_step =
        format!("bftsim explore --seed 4242 --envelope scenarios/envelope.toml --emit 2 > {dir}/runs/2.toml");
    assert!(md.contains(&two_step), "a run without a file is written first: {two_step}");
    let envelope = fs::read_to_string(out.join("figures/envelope.svg")).expect("envelope figure");
    for row in ["partition", "message loss", "no network faults"] {
        assert!(envelope.contains(row), "the envelope figure lacks the row {row:?}");
    }
    assert!(!envelope.contains("not recorded"), "every generated run records its network condition");
}
