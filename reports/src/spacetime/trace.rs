//! From the simulator's trace events to a [`Diagram`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::{Diagram, DiagramEvent, EventKind, Lane};

/// (receiver, session, message text): what a delivery shares with its send.
type MessageKey = (u64, Option<u64>, String);

/// A send in flight: its time, the sender's identity and the sender's lane.
type InFlight = (u64, Option<u64>, Option<u32>);

/// Lanes of twins' second copies: 2^30 + the agent (the simulator's network address of that
/// copy, which drops and holds towards it name as their `peer`).
pub const SECOND_COPY: u32 = 1 << 30;

/// The lane of `agent`'s copy `copy` (0: the agent itself).
fn lane_of(agent: u32, copy: u64) -> u32 {
    if copy > 0 && agent < SECOND_COPY {
        SECOND_COPY + agent
    } else {
        agent
    }
}

/// The diagram of a trace (`bftsim reproduce --trace` lines, one JSON event per line). A
/// delivery that carries `sent_ms` (traces since the simulator records it) is drawn from that
/// send time on the lane of its `peer` (the sender), and the send it matches is taken out of
/// the sends still in flight. Older traces' deliveries, and drops, are matched to their sends
/// first-in, first-out by (receiver, session, message text).
///
/// A twin's two copies (events with `copy`: 1 at the second) get a lane each, the second right
/// below the first; a message is drawn from the lane of the copy that sent it.
pub fn from_trace_jsonl(text: &str, name: &str) -> Diagram {
    let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_u64);
    let detail = |e: &Value| e.get("detail").and_then(Value::as_str).unwrap_or("").to_owned();
    let (byzantine, strategy) = setup(events.iter().map(detail).find(|d| d.starts_with("setup:")).as_deref());
    let mut agents: BTreeSet<u32> = BTreeSet::new();
    let mut in_flight: BTreeMap<MessageKey, VecDeque<InFlight>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut violation = None;
    for e in &events {
        let kind = e.get("kind").and_then(Value::as_str).unwrap_or("");
        let time_ms = field(e, "time_ms").unwrap_or(0);
        let copy = field(e, "copy").unwrap_or(0);
        let agent = field(e, "agent").and_then(|a| u32::try_from(a).ok()).map(|a| lane_of(a, copy));
        let peer = field(e, "peer");
        let session = field(e, "session");
        let label = crate::humanize::detail(&detail(e));
        agents.extend(agent);
        let round =
            label.split("round ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
        let mut ev = DiagramEvent { time_ms, agent, session, round, label: label.clone(), ..Default::default() };
        ev.kind = match kind {
            "send" => {
                let key = (peer.unwrap_or(u64::MAX), session, detail(e));
                in_flight.entry(key).or_default().push_back((time_ms, field(e, "agent"), agent));
                continue;
            }
            "deliver" | "drop" => {
                let receiver = if kind == "deliver" { field(e, "agent") } else { peer };
                let key = (receiver.unwrap_or(u64::MAX), session, detail(e));
                let recorded = if kind == "deliver" { field(e, "sent_ms") } else { None };
                let matched = in_flight.get_mut(&key).and_then(|queue| take_send(queue, recorded, peer));
                // The send's lane tells a twin's copies apart; a recorded sender that is not the
                // matched send's is drawn from its own lane.
                let sender = match (recorded, matched) {
                    (Some(_), Some(m)) if peer.is_none() || m.1 == peer => m.2,
                    (Some(_), _) => peer.and_then(|p| u32::try_from(p).ok()),
                    (None, m) => m.and_then(|m| m.2),
                };
                ev.matched_send_ms = recorded.or(matched.map(|m| m.0));
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
                // Structured fields since the trace has them (`candidate`, `method`, `round`);
                // older traces name the candidate in `value` only.
                let candidate = field(e, "candidate").or_else(|| field(e, "value"));
                let method = e.get("method").and_then(Value::as_str).map(|m| m.replace('-', " "));
                ev.label = match (candidate, method) {
                    (Some(c), Some(m)) => format!("decide candidate {c} by {m}"),
                    (Some(c), None) => format!("decide candidate {c}"),
                    (None, Some(m)) => format!("decide: {m}"),
                    (None, None) => "decide no candidate".to_owned(),
                };
                ev.round = ev.round.or_else(|| field(e, "round").and_then(|r| u32::try_from(r).ok()));
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
    // Drops and holds towards a second copy name its address: that copy's lane.
    agents.extend(out.iter().filter_map(|e| e.peer).filter(|p| *p >= SECOND_COPY));
    let mut lanes: Vec<Lane> = agents.into_iter().map(|id| lane(id, &byzantine, &strategy)).collect();
    // A second copy right below its first.
    lanes.sort_by_key(|l| (l.id % SECOND_COPY, l.id / SECOND_COPY));
    Diagram {
        title: format!("space-time diagram of {name}"),
        agents: lanes,
        events: out,
        violation,
        ..Default::default()
    }
}

/// The lane of `id` (an agent, or 2^30 + a twin's agent for its second copy), labelled.
fn lane(id: u32, byzantine: &BTreeSet<u32>, strategy: &str) -> Lane {
    let agent = id % SECOND_COPY;
    let honest = !byzantine.contains(&agent);
    let label = match (honest, id >= SECOND_COPY, strategy) {
        (_, true, _) => format!("agent {agent}, twin copy 2"),
        (false, false, "twin") => format!("agent {agent}, twin copy 1"),
        (false, false, _) => format!("agent {agent} (byzantine, {strategy})"),
        (true, false, _) => format!("agent {agent}"),
    };
    Lane { id, label, honest: honest && id < SECOND_COPY }
}

/// The send a delivery matches among the sends in flight of its (receiver, session, text): the
/// one at `sent_ms` from `sender` when the delivery records them, else the oldest.
fn take_send(queue: &mut VecDeque<InFlight>, sent_ms: Option<u64>, sender: Option<u64>) -> Option<InFlight> {
    let exact = sent_ms.and_then(|at| queue.iter().position(|s| s.0 == at && (sender.is_none() || s.1 == sender)));
    match exact {
        Some(i) => queue.remove(i),
        None => queue.pop_front(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const SENDS: &str = r#"{"step":0,"time_ms":1,"kind":"send","agent":0,"peer":2,"session":0,"detail":"vote of agent 0 for candidate 1"}
{"step":1,"time_ms":4,"kind":"send","agent":1,"peer":2,"session":0,"detail":"vote of agent 0 for candidate 1"}"#;

    fn deliveries(diagram: &Diagram) -> Vec<(Option<u32>, Option<u64>)> {
        diagram.events.iter().filter(|e| e.kind == EventKind::Deliver).map(|e| (e.peer, e.matched_send_ms)).collect()
    }

    #[test]
    fn a_delivery_with_its_send_time_is_drawn_from_its_true_send() {
        // The second send arrives first: first-in, first-out matching would pair it with the first.
        let text = format!(
            "{SENDS}\n{}\n{}",
            r#"{"step":2,"time_ms":6,"kind":"deliver","agent":2,"peer":1,"session":0,"sent_ms":4,"detail":"vote of agent 0 for candidate 1"}"#,
            r#"{"step":3,"time_ms":9,"kind":"deliver","agent":2,"peer":0,"session":0,"sent_ms":1,"detail":"vote of agent 0 for candidate 1"}"#,
        );
        assert_eq!(deliveries(&from_trace_jsonl(&text, "t")), [(Some(1), Some(4)), (Some(0), Some(1))]);
    }

    #[test]
    fn older_traces_without_send_times_still_match_first_in_first_out() {
        let text = format!(
            "{SENDS}\n{}\n{}",
            r#"{"step":2,"time_ms":6,"kind":"deliver","agent":2,"peer":1,"session":0,"detail":"vote of agent 0 for candidate 1"}"#,
            r#"{"step":3,"time_ms":9,"kind":"deliver","agent":2,"peer":0,"session":0,"detail":"vote of agent 0 for candidate 1"}"#,
        );
        assert_eq!(deliveries(&from_trace_jsonl(&text, "t")), [(Some(0), Some(1)), (Some(1), Some(4))]);
    }
}
