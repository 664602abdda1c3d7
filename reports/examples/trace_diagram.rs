//! Draws the space-time diagram of a `bftsim reproduce --trace FILE` trace:
//!
//! ```sh
//! bftsim reproduce scenarios/mut-no-locking.toml --seed 56 --trace trace.jsonl
//! cargo run -p reports --example trace_diagram -- trace.jsonl diagram.svg [SESSION]
//! ```
//!
//! A reference for turning the simulator's trace events into a [`Diagram`]: deliveries are
//! matched to their sends first-in, first-out by (receiver, session, message text), since a
//! delivery event names its receiver but not its sender.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::ExitCode;

use reports::spacetime::{render_svg, Diagram, DiagramEvent, EventKind, Lane};
use serde_json::Value;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: trace_diagram TRACE.jsonl OUT.svg [SESSION]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(input) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {input}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut diagram = diagram_of(&text, input);
    diagram.session = args.get(2).and_then(|s| s.parse().ok());
    if let Err(e) = std::fs::write(output, render_svg(&diagram)) {
        eprintln!("cannot write {output}: {e}");
        return ExitCode::from(2);
    }
    println!("wrote {output}: {} agents, {} events", diagram.agents.len(), diagram.events.len());
    ExitCode::SUCCESS
}

/// (receiver, session, message text): what a delivery shares with its send.
type MessageKey = (u64, Option<u64>, String);

fn diagram_of(text: &str, name: &str) -> Diagram {
    let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_u64);
    let detail = |e: &Value| e.get("detail").and_then(Value::as_str).unwrap_or("").to_owned();
    let (byzantine, strategy) = setup(events.iter().map(detail).find(|d| d.starts_with("setup:")).as_deref());
    let mut agents: BTreeSet<u32> = BTreeSet::new();
    let mut in_flight: BTreeMap<MessageKey, VecDeque<(u64, Option<u64>)>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut violation = None;
    for e in &events {
        let kind = e.get("kind").and_then(Value::as_str).unwrap_or("");
        let time_ms = field(e, "time_ms").unwrap_or(0);
        let agent = field(e, "agent").and_then(|a| u32::try_from(a).ok());
        let peer = field(e, "peer");
        let session = field(e, "session");
        let label = reports::humanize::detail(&detail(e));
        agents.extend(agent);
        let round =
            label.split("round ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
        let mut ev = DiagramEvent { time_ms, agent, session, round, label: label.clone(), ..Default::default() };
        ev.kind = match kind {
            "send" => {
                let key = (peer.unwrap_or(u64::MAX), session, detail(e));
                in_flight.entry(key).or_default().push_back((time_ms, field(e, "agent")));
                continue;
            }
            "deliver" | "drop" => {
                let receiver = if kind == "deliver" { field(e, "agent") } else { peer };
                let key = (receiver.unwrap_or(u64::MAX), session, detail(e));
                let sent = in_flight.get_mut(&key).and_then(VecDeque::pop_front);
                ev.matched_send_ms = sent.map(|s| s.0);
                let sender = sent.and_then(|s| s.1).and_then(|a| u32::try_from(a).ok());
                if kind == "deliver" {
                    ev.peer = sender;
                    EventKind::Deliver
                } else {
                    ev.agent = sender.or(agent);
                    ev.peer = peer.and_then(|p| u32::try_from(p).ok());
                    EventKind::Drop
                }
            }
            "hold" => EventKind::Hold,
            "timeout" => EventKind::Timeout,
            "vote" => EventKind::Vote,
            "decide" => {
                let value = field(e, "value").map_or("no candidate".to_owned(), |v| format!("candidate {v}"));
                ev.label = format!("decide {value}");
                EventKind::Decide
            }
            "evidence" | "reject" => EventKind::Evidence,
            "fault" if !label.starts_with("setup") => EventKind::Fault,
            "open" => EventKind::Open,
            "violation" => {
                violation = Some((time_ms, agent, label));
                continue;
            }
            _ => continue,
        };
        out.push(ev);
    }
    let lanes = agents
        .into_iter()
        .map(|id| {
            let honest = !byzantine.contains(&id);
            let label = if honest { format!("agent {id}") } else { format!("agent {id} (byzantine, {strategy})") };
            Lane { id, label, honest }
        })
        .collect();
    Diagram {
        title: format!("space-time diagram of {name}"),
        agents: lanes,
        events: out,
        violation,
        ..Default::default()
    }
}

/// The Byzantine agents and their strategy from the trace's setup line
/// (`… byzantine [2] (equivocate) …`).
fn setup(line: Option<&str>) -> (BTreeSet<u32>, String) {
    let Some(rest) = line.and_then(|l| l.split("byzantine [").nth(1)) else { return (BTreeSet::new(), String::new()) };
    let ids = rest.split(']').next().unwrap_or("").split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let strategy = rest.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap_or("").to_owned();
    (ids, strategy)
}
