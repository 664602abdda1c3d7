//! Reports generated from synthetic result sets: files, references, robustness.

use std::fs;
use std::path::Path;

use reports::{generate, ReportError, ReportOptions};
use serde_json::json;

use crate::fixtures::{record, sample_report, temp_dir, write_input};

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[test]
fn every_figure_is_written_and_referenced() {
    let output = sample_report();
    let out = output.html.parent().expect("output dir").to_path_buf();
    let html = fs::read_to_string(&output.html).expect("report.html");
    let md = fs::read_to_string(&output.markdown).expect("report.md");

    let svgs: Vec<_> = output.figures.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")).collect();
    let pngs: Vec<_> = output.figures.iter().filter(|p| p.extension().is_some_and(|e| e == "png")).collect();
    assert_eq!(svgs.len(), pngs.len(), "every figure as SVG and PNG");
    // Envelope, overview, 2 Byzantine figures, 2 heatmaps, 1 line chart, and 3 for the one
    // scenario shown in full (the sweep point that missed its expectations).
    assert_eq!(svgs.len(), 1 + 1 + 2 + 2 + 1 + 3);
    for path in &output.figures {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(path.starts_with(out.join("figures")), "{}", path.display());
        if path.extension().is_some_and(|e| e == "png") {
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is a PNG", path.display());
            assert!(md.contains(&format!("](figures/{})", file_name(path))), "report.md shows {}", path.display());
        } else {
            assert!(String::from_utf8_lossy(&bytes).contains("<svg"), "{} is an SVG", path.display());
        }
        assert!(
            html.contains(&format!("href=\"figures/{}\"", file_name(path))),
            "report.html links {}",
            path.display()
        );
    }
    let files_on_disk = fs::read_dir(out.join("figures")).expect("figures dir").count();
    assert_eq!(files_on_disk, output.figures.len(), "figures lists every file written");
    assert_eq!(html.matches("<img src=\"data:image/svg+xml;base64,").count(), svgs.len(), "every figure inline");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing from the network");
}

#[test]
fn content_covers_the_brief() {
    let output = sample_report();
    let md = fs::read_to_string(&output.markdown).expect("report.md");
    let html = fs::read_to_string(&output.html).expect("report.html");
    assert!(html.contains("<title>My title</title>"));
    for needle in [
        "How to read this report",
        "Violations and how to replay them",
        "bftsim reproduce scenarios/mut-quorum.toml --seed 0",
        "bftsim reproduce scenarios/mut-quorum.toml --seed 1",
        "Accuracy and liveness against the Byzantine share",
        "strategy collude, detector median-mad",
        "Sweep sw",
        "Sweep line",
        "The design's monitoring metrics",
        "Low Consensus Success Rate",
        "**The vote held:**",
        "**The checker works:**",
        "**Expectations:**",
        "**What to replay first**",
        "Where the vote holds",
        "Scenarios that need attention",
        "Scenarios in brief",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    for word in ["the seed's", "The seed's", "the seed (", "seed 6.1", "seed 3.2"] {
        assert!(!md.contains(word), "the design document is \"the design\", not {word:?}");
    }
    assert!(html.contains("Contents"), "table of contents");
    assert!(md.contains("| `agreement` |"), "violation rows name the invariant");
}

#[test]
fn empty_input_says_there_is_nothing_to_show() {
    let input = write_input("empty-in", &[], None);
    let out = temp_dir("empty-out");
    let output = generate(&input, &out, &ReportOptions::default()).expect("report");
    assert!(output.figures.is_empty());
    let html = fs::read_to_string(&output.html).expect("report.html");
    let md = fs::read_to_string(&output.markdown).expect("report.md");
    assert!(html.contains("nothing to show") && md.contains("nothing to show"));
}

#[test]
fn single_runs_and_huge_numbers_render() {
    let max = u64::MAX;
    let huge = record(
        "huge",
        max,
        [max, max, max / 2, 0, 0, 0, max],
        json!({"latency_ms": {"p50": max, "p95": max, "p99": max, "max": max}, "agreement_ppm": max,
               "byzantine": [0, 1, 2], "detected": [0, 1, 2, 3], "sla_misses": max}),
    );
    let input = write_input("huge-in", &[huge], None);
    let out = temp_dir("huge-out");
    let output = generate(&input, &out, &ReportOptions::default()).expect("report");
    // Envelope, overview and the 2 Byzantine figures; the scenario itself is one line.
    assert_eq!(output.figures.len(), 2 * (1 + 1 + 2));
    let md = fs::read_to_string(&output.markdown).expect("report.md");
    assert!(md.contains(&format!("seed {max}")));
}

#[test]
fn bad_input_is_named_by_file_and_line() {
    let input = temp_dir("bad-in");
    fs::write(input.join("runs.jsonl"), "{\"scenario\":\"a\"}\n{\"seed\": -1}\n").expect("write");
    let err = generate(&input, &temp_dir("bad-out"), &ReportOptions::default()).expect_err("bad line");
    assert!(matches!(err, ReportError::BadRecord { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("runs.jsonl:2:"), "{err}");

    fs::write(input.join("runs.jsonl"), "").expect("write");
    fs::write(input.join("summary.json"), "{\n  \"seeds\": \"x\"\n}").expect("write");
    let err = generate(&input, &temp_dir("bad-out2"), &ReportOptions::default()).expect_err("bad summary");
    assert!(err.to_string().contains("summary.json:2:"), "{err}");

    let missing = temp_dir("missing-in");
    let err = generate(&missing, &temp_dir("missing-out"), &ReportOptions::default()).expect_err("no runs.jsonl");
    assert!(matches!(err, ReportError::Read { .. }) && err.to_string().contains("runs.jsonl"), "{err}");
}

/// Issue 10 (a): with `deadline_ms = 1000` the report said the SLA was 500 ms and drew the
/// 500 ms line, while the terminal counted misses against 1,000 ms.
#[test]
fn the_sla_comes_from_each_scenario() {
    let slow = record(
        "slow",
        0,
        [10, 10, 10, 0, 0, 0, 0],
        json!({"deadline_ms": 1000, "agents": 5, "sessions_over_sla": 2, "outcome": "violation",
               "violations": [{"invariant": "liveness", "step": 9, "time_ms": 31000, "detail": "agent-2 did not decide session-4 by 30000 ms"}]}),
    );
    let fast = record("fast", 0, [10, 10, 10, 0, 0, 0, 0], json!({"agents": 4, "sessions_over_sla": 0}));
    let summary = json!({"seeds": 1, "seed_start": 0, "passed": false, "scenarios": [
        {"scenario": "slow", "path": "scenarios/slow.toml", "expect_safety": true, "passed": false,
         "failures": [{"seed": 0, "invariant": "liveness", "reproduce": "bftsim reproduce scenarios/slow.toml --seed 0"}],
         "settings": {"description": "a slow one", "agents": 5, "byzantine": 1, "strategy": "silent", "threshold": 0.66,
                      "deadline_ms": 1000, "fallback": "none", "detector": "mean-deviation", "mutation": "none",
                      "sessions": 10, "candidates": 3, "concurrency": 1, "drop": 0.05, "latency_ms": [1, 50],
                      "faults": [{"at_ms": 100, "kind": "crash", "target": "agent 2"}, {"at_ms": 900, "kind": "restart", "target": "agent 2"}]}},
        {"scenario": "fast", "path": "scenarios/fast.toml", "expect_safety": true, "passed": true, "failures": []}
    ]});
    let input = write_input("sla-in", &[slow, fast], Some(&summary));
    let output = generate(&input, &temp_dir("sla-out"), &ReportOptions::default()).expect("report");
    let md = fs::read_to_string(&output.markdown).expect("report.md");
    let after = |heading: &str| md.rfind(heading).map(|at| &md[at..]).unwrap_or_else(|| panic!("no {heading:?}"));
    let brief = after("Scenarios in brief");
    let slow_section = after("Scenarios that need attention").trim_end_matches(brief);
    for needle in [
        "**SLA:** 1000 ms, the scenario's session deadline. 20.0% of its sessions (2 of 10)",
        "session deadline (the SLA) 1000 ms",
        "100 ms: **crash** agent 2",
        "900 ms: **restart** agent 2",
        "agent 2 did not decide session 4 by 30000 ms",
        "bftsim reproduce scenarios/slow.toml --seed 0",
    ] {
        assert!(slow_section.contains(needle), "the slow scenario's section lacks {needle:?}");
    }
    assert!(!slow_section.contains("500 ms"), "no 500 ms SLA anywhere for a 1000 ms scenario");
    assert!(brief.contains("| `fast` | 4 agents; not recorded; SLA 500 ms |"), "{brief}");
    assert!(md.contains("10.0% of sessions (2 of 20) were decided later than their scenario's SLA"));
}
