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
        "bftsim reproduce out/findings/F1.min.toml --seed 977",
        "19 lines; size 38 before shrinking, 7 after",
        "interrupted",
        "findings/missing.svg",
        "could not be read",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
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
