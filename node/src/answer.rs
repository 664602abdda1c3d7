//! The JSON answer of `GET /v1/sessions/{id}`, and how `verify` holds an answer to its
//! certificate.
//!
//! Every field of an answer but the node's own clock readings follows from the decided value
//! the certificate signs: [`certified_fields`] computes them, the API serves them, and
//! `verify` recomputes them from the certificate and compares field by field, so an answer
//! whose `chosen`, `chosen_text` or `query` was edited outside the certificate is refused.

use consensus_core::protocol::messages::{SignedSpec, SignedVote};
use consensus_core::protocol::{AgreedOutcome, Commit, ProposalMode, Round};
use consensus_core::SessionId;
use serde_json::{json, Map, Value};

use crate::evaluate::QueryEnvelope;
use crate::state::DecisionEntry;

/// Fields of a decided answer that no certificate covers: this node's clock readings.
pub const UNCERTIFIED: [&str; 2] = ["decided_ms", "latency_ms"];

/// The answer's fields that follow from the decided value and the round it was decided in.
pub fn certified_fields(
    session: SessionId,
    spec: &SignedSpec,
    mode: ProposalMode,
    votes: &[SignedVote],
    outcome: &AgreedOutcome,
    round: Option<Round>,
) -> Map<String, Value> {
    let envelope = QueryEnvelope::of(&spec.spec);
    let (name, chosen, method, agreement, flagged) = match outcome {
        AgreedOutcome::Decided { chosen, method, agreement, byzantine } => {
            ("decided", Some(chosen.0), Some(json!(method)), Some(f64::from(agreement.raw()) / 1e6), byzantine.clone())
        }
        AgreedOutcome::Escalated { action, byzantine } => {
            ("escalated", None, Some(json!({ "escalation": action })), None, byzantine.clone())
        }
        AgreedOutcome::NoDecision { achieved } => {
            ("no-decision", None, None, Some(f64::from(achieved.raw()) / 1e6), vec![])
        }
    };
    let participating: Vec<u32> = votes.iter().map(|v| v.vote.agent.0).collect();
    let fields = json!({
        "session": session.0,
        "status": "decided",
        "outcome": name,
        "chosen": chosen,
        "chosen_text": chosen.and_then(|c| envelope.candidates.get(c as usize).cloned()),
        "method": method,
        "agreement": agreement,
        "participating": participating,
        "flagged": flagged.iter().map(|a| a.0).collect::<Vec<_>>(),
        "mode": mode,
        "round": round,
        "opened_ms": spec.spec.opened_ms,
        "query": envelope.query,
        "candidates": envelope.candidates,
    });
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The JSON answer for a decision this node holds.
pub fn decision_json(entry: &DecisionEntry) -> Value {
    let r = &entry.record;
    let mut fields = certified_fields(r.session, &r.spec, r.mode, &r.votes, &r.outcome, r.round);
    fields.insert("decided_ms".into(), json!(r.at_ms));
    fields.insert("latency_ms".into(), json!(r.at_ms.saturating_sub(r.spec.spec.opened_ms)));
    fields.insert("certificate".into(), json!(entry.certificate));
    Value::Object(fields)
}

/// What a JSON document handed to `verify` is.
#[derive(Debug)]
pub enum Submitted {
    /// A bare certificate.
    Certificate(Value),
    /// A decided answer: its fields, and its certificate.
    Answer(Map<String, Value>, Value),
    /// Not something to verify; the plain reason.
    Unverifiable(String),
}

/// Sorts out what `json` is, explaining answers that carry no certificate in plain words.
pub fn classify(json: Value) -> Submitted {
    let Value::Object(mut map) = json else {
        return Submitted::Unverifiable(
            "the input is JSON but not an object: neither an answer nor a certificate".into(),
        );
    };
    if map.contains_key("proposal") && map.contains_key("precommits") {
        return Submitted::Certificate(Value::Object(map));
    }
    let session = map.get("session").map_or("?".into(), Value::to_string);
    if let Some(Value::String(e)) = map.get("error") {
        return Submitted::Unverifiable(format!("the answer is an error, not a decision: {e}"));
    }
    match map.get("status").and_then(Value::as_str) {
        Some("pending") => {
            let round = map.get("round").filter(|r| !r.is_null()).map_or(String::new(), |r| format!(", round {r}"));
            return Submitted::Unverifiable(format!(
                "session {session} was not decided yet at the node that answered (status \"pending\"{round}): a \
                 pending answer (HTTP 202) has no certificate; ask again, e.g. GET /v1/sessions/{session}?wait_ms=5000, \
                 and verify the 200 answer"
            ));
        }
        Some("decided") => {}
        _ => {
            return Submitted::Unverifiable(
                "neither a GET /v1/sessions/{id} answer (no \"status\") nor a certificate (no \"proposal\" and \
                 \"precommits\")"
                    .into(),
            )
        }
    }
    match map.remove("certificate") {
        Some(Value::Null) | None => Submitted::Unverifiable(format!(
            "session {session} is decided at the node that answered, but the answer has no certificate yet; ask \
             again with ?wait_ms=1000"
        )),
        Some(cert) => Submitted::Answer(map, cert),
    }
}

/// Every field of `answer` that differs from what `commit` certifies, in words; empty when the
/// answer is the certificate's. `decided_ms` and `latency_ms` are the node's own readings:
/// only their consistency is checked.
pub fn mismatches(answer: &Map<String, Value>, commit: &Commit) -> Vec<String> {
    let value = &commit.proposal.value;
    let round = commit.precommits.first().map_or(commit.proposal.round, |c| c.round);
    let certified = certified_fields(value.session, &value.spec, value.mode, &value.votes, &value.outcome, Some(round));
    let mut out = Vec::new();
    for (key, expected) in &certified {
        match answer.get(key) {
            None => out.push(format!("`{key}` is missing (the certificate says {expected})")),
            Some(found) if !same(found, expected) => {
                out.push(format!("`{key}` is {found}, but the certificate says {expected}"))
            }
            Some(_) => {}
        }
    }
    for key in answer.keys() {
        if !certified.contains_key(key) && !UNCERTIFIED.contains(&key.as_str()) {
            out.push(format!("`{key}` is not a field of an answer (nothing certifies it)"));
        }
    }
    let decided = answer.get("decided_ms").and_then(Value::as_u64);
    let latency = answer.get("latency_ms").and_then(Value::as_u64);
    if let (Some(decided), Some(latency)) = (decided, latency) {
        let opened = value.spec.spec.opened_ms;
        if decided.saturating_sub(opened) != latency {
            out.push(format!(
                "`latency_ms` is {latency}, but decided_ms - opened_ms = {}",
                decided.saturating_sub(opened)
            ));
        }
    }
    out
}

/// JSON equality, with numbers compared as numbers (1.0 and 1 alike; agreement is a fraction).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_without_a_certificate_are_explained_in_words() {
        let table = [
            (json!({"session": 7, "status": "pending", "round": 2}), "session 7 was not decided yet"),
            (
                json!({"session": 7, "status": "pending", "round": null}),
                "a pending answer (HTTP 202) has no certificate",
            ),
            (json!({"error": "session 9 was never issued"}), "the answer is an error, not a decision: session 9"),
            (json!({"session": 7, "status": "decided", "certificate": null}), "the answer has no certificate yet"),
            (json!([1, 2]), "not an object"),
            (json!({"hello": 1}), "neither a GET /v1/sessions/{id} answer"),
        ];
        for (json, expected) in table {
            match classify(json.clone()) {
                Submitted::Unverifiable(why) => assert!(why.contains(expected), "{json}: {why}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(matches!(classify(json!({"proposal": {}, "precommits": []})), Submitted::Certificate(_)));
        assert!(matches!(classify(json!({"status": "decided", "certificate": {}})), Submitted::Answer(..)));
    }
}
