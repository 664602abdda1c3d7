//! The simulator's invariants, checked from the client history and the nodes' answers of a
//! real run (sim/src/oracle has the simulated versions; the names are the oracle's):
//!
//! - `acknowledged-durable`: no session id is acknowledged twice (a restarted opener never hands
//!   an acknowledged id out again), and every node answers an acknowledged session with the
//!   query and candidates the client submitted under that id;
//! - `agreement`: every answer of a session (every node's, and the one the client saw first)
//!   has one outcome, one chosen candidate and one certified value;
//! - `integrity`: a node never changes its answer (the client's first answer from a node is
//!   the node's answer at the end);
//! - `external-validity`: every answer's certificate verifies against the cluster's keys (the
//!   client's signature, the proposal, q votes, q precommits of one round) and the answer says
//!   what the certificate certifies (`node verify`'s field checks);
//! - `liveness` (when the scenario promises it): every submission is acknowledged and decided
//!   by every live honest node within `expect.liveness_bound_ms` after the last fault.

use std::collections::BTreeMap;

use consensus_core::protocol::Commit;
use consensus_core::sign::Ed25519Keyring;
use consensus_core::AgentId;
use reports::model::Violation;
use serde_json::Value;

use crate::client::Submission;

/// The answers every checked node gave at the end: `(node, session) → answer` (`None`: not
/// decided there within the bound).
pub type Answers = BTreeMap<(usize, u64), Option<Value>>;

/// What the checks need besides the history.
pub struct Context<'a> {
    /// The cluster's public keys.
    pub keyring: &'a Ed25519Keyring,
    /// The committee.
    pub members: &'a [AgentId],
    /// Whether the scenario promises liveness.
    pub liveness: bool,
    /// When the checks ran, ms since the start.
    pub now_ms: u64,
}

fn violation(invariant: &str, step: u64, time_ms: u64, detail: String) -> Violation {
    Violation { invariant: invariant.to_owned(), step, time_ms, detail }
}

/// The part of an answer every node must agree on.
fn agreed(v: &Value) -> Value {
    serde_json::json!({
        "outcome": v["outcome"],
        "chosen": v["chosen"],
        "value": v["certificate"]["precommits"][0]["value"],
    })
}

/// The first violated invariant, or `None`.
pub fn check(history: &[Submission], answers: &Answers, cx: &Context<'_>) -> Option<Violation> {
    let mut by_id: BTreeMap<u64, &Submission> = BTreeMap::new();
    for s in history {
        let Some(id) = s.session else { continue };
        if let Some(first) = by_id.insert(id, s) {
            let detail = format!(
                "session id {id} was acknowledged twice: to submission {} at {} ms and to submission {} at {} ms",
                first.index,
                first.acked_ms.unwrap_or(0),
                s.index,
                s.acked_ms.unwrap_or(0)
            );
            return Some(violation("acknowledged-durable", s.index, s.acked_ms.unwrap_or(0), detail));
        }
    }
    for s in history {
        let Some(id) = s.session else { continue };
        let mut seen: Vec<(String, &Value)> = Vec::new();
        if let Some((node, at, v)) = &s.decision {
            seen.push((format!("node {node} (to the client at {at} ms)"), v));
        }
        for ((node, _), v) in answers.iter().filter(|((_, sid), _)| *sid == id) {
            if let Some(v) = v {
                seen.push((format!("node {node}"), v));
            }
        }
        for (who, v) in &seen {
            if let Some(bad) = answer_problem(s, id, v, cx) {
                return Some(violation(bad.0, s.index, cx.now_ms, format!("session {id} at {who}: {}", bad.1)));
            }
        }
        if let Some((first_who, first)) = seen.first() {
            for (who, v) in &seen[1..] {
                if agreed(v) != agreed(first) {
                    let detail =
                        format!("session {id}: {first_who} answered {}, {who} answered {}", agreed(first), agreed(v));
                    return Some(violation("agreement", s.index, cx.now_ms, detail));
                }
            }
        }
        if let Some((node, at, v)) = &s.decision {
            if let Some(Some(end)) = answers.get(&(*node, id)) {
                if end["certificate"] != v["certificate"] || agreed(end) != agreed(v) {
                    let detail = format!("node {node} answered session {id} differently at {at} ms and at the end");
                    return Some(violation("integrity", s.index, cx.now_ms, detail));
                }
            }
        }
    }
    if cx.liveness {
        return liveness(history, answers, cx);
    }
    None
}

/// Why an answer is wrong for the submission, as `(invariant, detail)`.
fn answer_problem(s: &Submission, id: u64, v: &Value, cx: &Context<'_>) -> Option<(&'static str, String)> {
    if v["session"].as_u64() != Some(id) {
        return Some(("integrity", format!("the answer is about session {}", v["session"])));
    }
    let candidates: Vec<&str> =
        v["candidates"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if v["query"].as_str() != Some(s.query.as_str()) || candidates != s.candidates {
        let detail = format!(
            "the answer is about {:?} with {:?}, but the client submitted {:?} under this id",
            v["query"], candidates, s.query
        );
        return Some(("acknowledged-durable", detail));
    }
    let commit: Commit = match serde_json::from_value(v["certificate"].clone()) {
        Ok(c) => c,
        Err(e) => return Some(("external-validity", format!("the certificate does not parse: {e}"))),
    };
    if let Err(e) = node::verify::verify_certificate(&commit, cx.keyring, cx.members) {
        return Some(("external-validity", format!("the certificate does not verify: {e}")));
    }
    let wrong = match v.as_object() {
        Some(fields) => {
            // `verify`'s field check takes the answer without its certificate.
            let mut fields = fields.clone();
            fields.remove("certificate");
            node::answer::mismatches(&fields, &commit)
        }
        None => vec!["the answer is not a JSON object".to_owned()],
    };
    if !wrong.is_empty() {
        return Some((
            "external-validity",
            format!("the answer says what its certificate does not: {}", wrong.join("; ")),
        ));
    }
    None
}

fn liveness(history: &[Submission], answers: &Answers, cx: &Context<'_>) -> Option<Violation> {
    for s in history {
        let Some(id) = s.session else {
            let last = s.failures.last().cloned().unwrap_or_default();
            let detail = format!("submission {} was never acknowledged (last refusal: {last})", s.index);
            return Some(violation("liveness", s.index, cx.now_ms, detail));
        };
        for ((node, _), v) in answers.iter().filter(|((_, sid), _)| *sid == id) {
            if v.is_none() {
                let detail = format!("node {node} did not decide session {id} within the liveness bound");
                return Some(violation("liveness", s.index, cx.now_ms, detail));
            }
        }
    }
    None
}
