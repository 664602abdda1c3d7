//! The marks of a space-time diagram: round boundaries, fault bands, messages, events on the
//! lanes and the violation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{esc, fit, DiagramEvent, EventKind, Frame, Labels, MessageKind, Spot, LANE_H, LEFT, VIOLATION_RED};

/// A dotted line where each session's rounds after its first begin.
pub(super) fn rounds(svg: &mut String, events: &[&DiagramEvent], frame: &Frame, lanes: usize, labels: &mut Labels) {
    let mut first: BTreeMap<(Option<u64>, u32), u64> = BTreeMap::new();
    for e in events {
        if let Some(r) = e.round {
            first.entry((e.session, r)).or_insert(e.time_ms);
        }
    }
    let sessions: BTreeSet<Option<u64>> = first.keys().map(|(s, _)| *s).collect();
    let opening: BTreeMap<Option<u64>, u32> =
        sessions.iter().filter_map(|s| first.keys().find(|(x, _)| x == s).map(|(_, r)| (*s, *r))).collect();
    for ((session, round), t) in &first {
        if opening.get(session) == Some(round) {
            continue;
        }
        let name = match session {
            Some(s) if sessions.len() > 1 => format!("session {s} round {round}"),
            _ => format!("round {round}"),
        };
        let x = frame.x(*t);
        // Above the lanes, on a second row when the first is taken (rounds close in time).
        let spots = [frame.top - 4.0, frame.top - 16.0].map(|y| Spot { x: x + 3.0, y, anchor: "start" });
        let text = labels.place(&name, 12.0, &spots).map_or_else(String::new, |s| {
            format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">{name}</text>", s.x, s.y)
        });
        let _ = writeln!(
            svg,
            "<g class=\"round\"><title>{name}</title><line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#555\" \
             stroke-dasharray=\"1 3\"/>{text}</g>",
            frame.top - 12.0,
            frame.bottom(lanes),
        );
    }
}

pub(super) fn fault_bands(
    svg: &mut String,
    events: &[&DiagramEvent],
    frame: &Frame,
    lanes: usize,
    labels: &mut Labels,
) {
    // (agent or every lane, the kind that opened it, from, to, label); `to` = MAX while open.
    let mut bands: Vec<(Option<u32>, &str, u64, u64, String)> = Vec::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Fault) {
        let word = e.label.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let (opens, closes) = match word.as_str() {
            "partition" => ("partition", ""),
            "crash" => ("crash", ""),
            "clog" => ("clog", ""),
            "heal" => ("", "partition"),
            "restart" => ("", "crash"),
            "unclog" => ("", "clog"),
            _ => continue,
        };
        let agent = if word == "partition" || word == "heal" { None } else { e.agent };
        let open = bands.iter_mut().rev().find(|b| b.0 == agent && b.3 == u64::MAX && (b.1 == opens || b.1 == closes));
        match (opens.is_empty(), open) {
            // A partition replaces the one in effect; a second crash or clog extends the first.
            (false, Some(band)) if opens == "partition" => band.3 = e.time_ms,
            (false, Some(_)) => continue,
            (false, None) => {}
            (true, Some(band)) => {
                band.3 = e.time_ms;
                continue;
            }
            (true, None) => continue,
        }
        bands.push((agent, opens, e.time_ms, u64::MAX, e.label.clone()));
    }
    for (agent, _, from, to, label) in bands {
        let (x0, x1) = (frame.x(from), frame.x(to.min(frame.t1)));
        let (y, h) = match frame.lane_y(agent) {
            Some(cy) => (cy - LANE_H / 2.0, LANE_H),
            None => (frame.top, frame.bottom(lanes) - frame.top),
        };
        // At the top of the band, else at its bottom.
        let text = fit(&label, 60);
        let spots = [y + 11.0, y + LANE_H - 4.0].map(|y| Spot { x: x0 + 3.0, y, anchor: "start" });
        let shown = labels.place(&text, 11.0, &spots).map_or_else(String::new, |s| {
            format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#6b5d00\" font-size=\"11\">{}</text>", s.x, s.y, esc(&text))
        });
        let _ = writeln!(
            svg,
            "<g class=\"fault\"><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#F0E442\" \
             fill-opacity=\"0.35\"><title>{}</title></rect>{shown}</g>",
            (x1 - x0).max(2.0),
            esc(&label),
        );
    }
}

pub(super) fn messages(svg: &mut String, events: &[&DiagramEvent], frame: &Frame) {
    for e in events.iter().filter(|e| matches!(e.kind, EventKind::Deliver | EventKind::Drop)) {
        let kind = e.message_kind();
        let (from_agent, to_agent) = match e.kind {
            EventKind::Deliver => (e.peer, e.agent),
            _ => (e.agent, e.peer),
        };
        let (Some(y0), Some(y1)) = (frame.lane_y(from_agent), frame.lane_y(to_agent)) else {
            tick(svg, e, frame, kind);
            continue;
        };
        let sent = e.matched_send_ms.unwrap_or(e.time_ms);
        let (x0, x1) = (frame.x(sent), frame.x(e.time_ms));
        let title = format!(
            "{} {} → {} at {} ms (sent {} ms): {}",
            if e.kind == EventKind::Drop { "dropped" } else { "delivered" },
            from_agent.map_or("?".into(), |a| a.to_string()),
            to_agent.map_or("?".into(), |a| a.to_string()),
            e.time_ms,
            sent,
            e.label
        );
        if e.kind == EventKind::Deliver {
            let _ = writeln!(
                svg,
                "<line class=\"msg delivered {n}\" x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" stroke=\"{c}\" \
                 stroke-width=\"0.9\" stroke-opacity=\"0.8\" marker-end=\"url(#head-{n})\"><title>{t}</title></line>",
                n = kind.name(),
                c = kind.color(),
                t = esc(&title)
            );
        } else {
            // The line ends where the message was lost: part of the way to the receiver.
            let lost = if x1 > x0 + 1.0 { 1.0 } else { 0.5 };
            let (xe, ye) = (x0 + (x1.max(x0 + 6.0) - x0) * lost, y0 + (y1 - y0) * lost);
            let _ = writeln!(
                svg,
                "<g class=\"msg dropped {n}\"><title>{t}</title><line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{xe:.1}\" y2=\"{ye:.1}\" \
                 stroke=\"{c}\" stroke-width=\"0.9\" stroke-dasharray=\"3 2\"/>{}</g>",
                cross(xe, ye, kind.color()),
                n = kind.name(),
                c = kind.color(),
                t = esc(&title)
            );
        }
    }
}

/// A delivery or drop that cannot be drawn as an arrow: a short tick on the lane it has.
fn tick(svg: &mut String, e: &DiagramEvent, frame: &Frame, kind: MessageKind) {
    let Some(y) = frame.lane_y(e.agent).or_else(|| frame.lane_y(e.peer)) else { return };
    let x = frame.x(e.time_ms);
    let _ = writeln!(
        svg,
        "<line class=\"msg tick\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"{}\"><title>{}</title></line>",
        y - 8.0,
        kind.color(),
        esc(&e.label)
    );
}

pub(super) fn cross(x: f64, y: f64, color: &str) -> String {
    format!(
        "<path d=\"M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}\" stroke=\"{color}\" stroke-width=\"1.5\"/>",
        x - 3.5,
        y - 3.5,
        x + 3.5,
        y + 3.5,
        x - 3.5,
        y + 3.5,
        x + 3.5,
        y - 3.5
    )
}

pub(super) fn markers(svg: &mut String, events: &[&DiagramEvent], frame: &Frame, labels: &mut Labels) {
    for e in events {
        let Some(y) = frame.lane_y(e.agent) else { continue };
        let x = frame.x(e.time_ms);
        let title = esc(&format!("{} ms: {}", e.time_ms, e.label));
        let mark = match e.kind {
            EventKind::Timeout => format!(
                "<line class=\"timeout\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#777\" stroke-width=\"2\"><title>timeout {title}</title></line>",
                y - 9.0,
                y + 9.0
            ),
            EventKind::Vote => format!("<circle class=\"vote\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#009E73\"><title>{title}</title></circle>"),
            EventKind::Propose | EventKind::Prevote | EventKind::Precommit => {
                let kind = match e.kind {
                    EventKind::Propose => MessageKind::Proposal,
                    EventKind::Prevote => MessageKind::Prevote,
                    _ => MessageKind::Precommit,
                };
                format!("<rect class=\"step\" x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\" fill=\"{}\"><title>{title}</title></rect>", x - 3.0, y - 3.0, kind.color())
            }
            EventKind::Lock | EventKind::Decide => {
                let (shape, prefix) = if e.kind == EventKind::Lock {
                    (format!("<path d=\"M{:.1},{:.1} L{x:.1},{:.1} L{:.1},{:.1} z\" fill=\"#444\"/>", x - 6.0, y + 5.0, y - 6.0, x + 6.0, y + 5.0), "lock ")
                } else {
                    (format!("<path d=\"M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} z\" fill=\"#0072B2\" stroke=\"#000\"/>", y - 7.0, x + 7.0, y + 7.0, x - 7.0), "")
                };
                let class = if e.kind == EventKind::Lock { "lock" } else { "decide" };
                let text = if e.label.to_ascii_lowercase().starts_with(prefix.trim()) || prefix.is_empty() { e.label.clone() } else { format!("{prefix}{}", e.label) };
                // Above the lane, below it, at its top edge, or beside the mark: the first spot
                // clear of the labels placed so far (near the diagram's edges it moves inwards).
                let text = fit(&text, 40);
                let mut spots = [y - 12.0, y + 24.0, y - 23.0].map(|y| Spot { x, y, anchor: "middle" }).to_vec();
                spots.extend([Spot { x: x + 10.0, y: y + 4.0, anchor: "start" }, Spot { x: x - 10.0, y: y + 4.0, anchor: "end" }]);
                let shown = labels.place(&text, 11.0, &spots).map_or_else(String::new, |s| {
                    format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{}\">{}</text>",
                        s.x,
                        s.y,
                        s.anchor,
                        esc(&text)
                    )
                });
                format!("<g class=\"{class}\"><title>{title}</title>{shape}{shown}</g>")
            }
            EventKind::Evidence | EventKind::Hold => format!("<circle class=\"other\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"none\" stroke=\"#B03A00\"><title>{title}</title></circle>"),
            EventKind::Open => format!("<path class=\"open\" d=\"M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} z\" fill=\"#56B4E9\"><title>{title}</title></path>", x - 5.0, y - 12.0, x + 5.0, y - 12.0, x, y - 4.0),
            _ => continue,
        };
        svg.push_str(&mark);
        svg.push('\n');
    }
}

pub(super) fn violation(
    svg: &mut String,
    time_ms: u64,
    agent: Option<u32>,
    lines: &[String],
    frame: &Frame,
    lanes: usize,
) {
    let x = frame.x(time_ms);
    // Above the lanes, below the legend (which moves down with a wrapped title).
    let text_top = frame.top - 16.0 * lines.len() as f64 - 16.0;
    let _ = write!(
        svg,
        "<g class=\"violation\"><line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{VIOLATION_RED}\" stroke-width=\"2.5\"/>",
        frame.top - 6.0,
        frame.bottom(lanes)
    );
    if let Some(y) = frame.lane_y(agent) {
        let _ = write!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"10\" fill=\"none\" stroke=\"{VIOLATION_RED}\" stroke-width=\"2.5\"/>");
    }
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{LEFT}\" y=\"{:.1}\" fill=\"{VIOLATION_RED}\" font-weight=\"bold\">{}</text>",
            text_top + 16.0 * i as f64,
            esc(line)
        );
    }
    svg.push_str("</g>\n");
}
