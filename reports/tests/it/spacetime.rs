//! The geometry of space-time diagrams, read back from the SVG: every text lies inside the
//! canvas, no two texts' boxes overlap, and a twin's two copies get a lane each. Text boxes
//! are reckoned as the renderer does not have to: 0.62 em a character (0.68 bold), from the
//! baseline 0.8 em up and 0.25 em down, DejaVu Sans being narrower than that on average.

use reports::spacetime::{from_trace_jsonl, render_svg, SECOND_COPY};
use serde_json::json;

/// Every text of `svg` with its box: (text, [left, top, right, bottom]).
fn text_boxes(svg: &str) -> (f64, f64, Vec<(String, [f64; 4])>) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    let root = doc.root_element();
    let size = |name: &str| root.attribute(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let (width, height) = (size("width"), size("height"));
    let mut boxes = Vec::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("text")) {
        let inherited = |name: &str| node.ancestors().find_map(|a| a.attribute(name));
        let font: f64 = inherited("font-size").and_then(|v| v.parse().ok()).unwrap_or(16.0);
        let em = if inherited("font-weight") == Some("bold") { 0.68 } else { 0.62 };
        let (mut dx, mut dy) = (0.0, 0.0);
        for a in node.ancestors() {
            if let Some(t) = a.attribute("transform").and_then(|t| t.strip_prefix("translate(")) {
                let xy: Vec<f64> = t.trim_end_matches(')').split(',').filter_map(|v| v.trim().parse().ok()).collect();
                dx += xy.first().copied().unwrap_or(0.0);
                dy += xy.get(1).copied().unwrap_or(0.0);
            }
        }
        let coordinate = |name: &str| node.attribute(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let (x, y) = (coordinate("x") + dx, coordinate("y") + dy);
        let text: String = node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
        let w = text.chars().count() as f64 * font * em;
        let left = match inherited("text-anchor") {
            Some("end") => x - w,
            Some("middle") => x - w / 2.0,
            _ => x,
        };
        boxes.push((text, [left, y - 0.8 * font, left + w, y + 0.25 * font]));
    }
    (width, height, boxes)
}

/// What is wrong with the geometry of `svg`, in words (empty: nothing).
fn problems(svg: &str) -> Vec<String> {
    let (width, height, boxes) = text_boxes(svg);
    let mut found = Vec::new();
    for (text, b) in &boxes {
        if b[0] < 0.0 || b[1] < 0.0 || b[2] > width || b[3] > height {
            found.push(format!("{text:?} at {b:?} leaves the {width} × {height} canvas"));
        }
    }
    for (i, (a, x)) in boxes.iter().enumerate() {
        for (b, y) in &boxes[i + 1..] {
            if x[0] < y[2] && y[0] < x[2] && x[1] < y[3] && y[1] < x[3] {
                found.push(format!("{a:?} at {x:?} overlaps {b:?} at {y:?}"));
            }
        }
    }
    found
}

/// A crowded twins run: 4 agents, agent 3 a twin whose second copy decides on its own, every
/// copy deciding several sessions within a few ms, rounds starting close together, a crash,
/// a partition, a long violation and a long name.
fn twins_trace() -> String {
    let mut events = vec![json!({"step": 0, "time_ms": 0, "kind": "fault", "agent": null, "session": null,
        "detail": "setup: scenario twins seed 12: 4 agents, byzantine [3] (twin), 6 sessions × 2 candidates, best [1]"})];
    let mut push = |mut e: serde_json::Value| {
        e["step"] = json!(events.len());
        events.push(e);
    };
    for session in 0..6_u64 {
        let t = 10 + session * 3;
        for (agent, copy) in [(0, 0), (1, 0), (2, 0), (3, 0), (3, 1)] {
            for to in [0, 1, 2] {
                if to == agent {
                    continue;
                }
                let text = format!("prevote round {session} by {agent} for value {session}");
                push(
                    json!({"time_ms": t, "kind": "send", "agent": agent, "peer": to, "session": session, "detail": text, "copy": copy}),
                );
                push(json!({"time_ms": t + 4, "kind": "deliver", "agent": to, "peer": agent, "session": session,
                    "sent_ms": t, "detail": text}));
            }
            push(
                json!({"time_ms": t + 6, "kind": "decide", "agent": agent, "session": session, "value": 1, "candidate": 1,
                "round": session, "method": "threshold", "value_id": "ab".repeat(32), "honest": copy == 0 && agent != 3,
                "detail": "decided candidate 1 by threshold in round 0", "copy": copy}),
            );
        }
    }
    push(
        json!({"time_ms": 12, "kind": "fault", "agent": 1, "session": null, "detail": "crash agent 1 (its disk keeps what was synced)"}),
    );
    push(
        json!({"time_ms": 14, "kind": "fault", "agent": null, "session": null, "detail": "partition groups [0, 1] | [2, 3, 3'] until the heal"}),
    );
    push(
        json!({"time_ms": 13, "kind": "drop", "agent": 0, "peer": SECOND_COPY + 3, "session": 1, "detail": "prevote lost: partition"}),
    );
    push(json!({"time_ms": 30, "kind": "violation", "agent": 3, "session": null,
        "detail": "agreement: agents 0 and 3 decided different candidates for session 5 in round 5, which cannot happen with at most one Byzantine agent of four and honest copies that both follow the protocol to the letter"}));
    events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_twins_trace_gets_a_lane_per_copy_and_every_label_fits() {
    let name = "findings/F1.min.toml, the shrunk twins scenario of an exploration around the default envelope at master seed 12, run 40312";
    let diagram = from_trace_jsonl(&twins_trace(), name);
    let svg = render_svg(&diagram);
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}"));
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .filter_map(|n| n.attribute("data-agent"))
        .collect();
    let second = (SECOND_COPY + 3).to_string();
    assert_eq!(
        lanes,
        ["0", "1", "2", "3", second.as_str()],
        "one lane per agent copy, the second copy below the first"
    );
    assert!(svg.contains("agent 3, twin copy 1") && svg.contains("agent 3, twin copy 2"), "{svg}");
    let problems = problems(&svg);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let decisions = doc.descendants().filter(|n| n.attribute("class") == Some("decide")).count();
    assert_eq!(decisions, 30, "every copy's decisions are drawn");
    let shown = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("decide"))
        .filter(|n| n.children().any(|c| c.has_tag_name("text")))
        .count();
    assert!(shown >= 10, "most decisions keep a label next to them ({shown} of 30)");
}

#[test]
fn the_second_copy_sends_from_its_own_lane() {
    let diagram = from_trace_jsonl(&twins_trace(), "t");
    let from_copy = diagram
        .events
        .iter()
        .filter(|e| e.kind == reports::spacetime::EventKind::Deliver && e.peer == Some(SECOND_COPY + 3))
        .count();
    assert_eq!(from_copy, 18, "6 sessions × 3 receivers");
    let drop = diagram.events.iter().find(|e| e.kind == reports::spacetime::EventKind::Drop);
    assert_eq!(drop.and_then(|d| d.peer), Some(SECOND_COPY + 3), "a drop towards the second copy is drawn to its lane");
}

#[test]
fn the_checker_sees_overlaps_and_text_off_the_canvas() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" font-size="12"><text x="10" y="20">abc</text><text x="12" y="22">abc</text><text x="90" y="40">too long</text></svg>"#;
    let found = problems(svg);
    assert_eq!(found.len(), 2, "{found:?}");
}
