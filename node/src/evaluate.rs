//! How an agent of a real node votes: `synthetic` (consensus-core's `SyntheticEvaluator`),
//! `command` (a judge program) or `http` (a judge service). Evaluations run on their own tasks;
//! the vote reaches the runner as a frame from [`LOCAL_EVALUATOR`], which `DurableNode` turns
//! into `Input::LocalVote`. A timeout, a failure or output that is not a valid vote becomes an
//! abstention, counted by reason.
//!
//! The JSON schema (docs/node.md, "Evaluators"):
//!
//! request  `{"session": 7, "agent": 1, "specialization": "analyzer", "query": "...",
//!            "candidates": [{"id": 0, "text": "..."}, ...], "opened_ms": 0, "deadline_ms": 500}`
//! response `{"scores": {"0": 0.91, "1": 0.40}, "confidence": 0.9, "reasoning": "..."}`
//!          or `{"abstain": "why"}`; scores and confidence are in [0, 1]; the agent accepts
//!          its highest-scored candidate (ties: the smaller id).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use consensus_core::evaluator::{EvaluationRequest, Evaluator, EvaluatorProfile, SyntheticEvaluator, TableTruth};
use consensus_core::protocol::messages::SignedVote;
use consensus_core::protocol::{Message, SessionSpec};
use consensus_core::runner::Clock;
use consensus_core::sign::Signature;
use consensus_core::{wire, AgentId, AgentSpecialization, AgentVote, CandidateId, Ppm, Priority, VoteValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use crate::clock::RealClock;
use crate::config::EvaluatorConfig;
use crate::durable::LOCAL_EVALUATOR;
use crate::http_client::{HttpClient, HttpError};
use crate::state::Shared;
use crate::transport::Inbox;

/// What a client submits, carried in the signed session spec's `query` field as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEnvelope {
    /// The question.
    pub query: String,
    /// The candidate answers; candidate `i` is `candidates[i]`.
    pub candidates: Vec<String>,
}

impl QueryEnvelope {
    /// Reads the envelope from a spec (a plain query gets empty candidate texts).
    pub fn of(spec: &SessionSpec) -> QueryEnvelope {
        serde_json::from_str(&spec.query).unwrap_or_else(|_| QueryEnvelope {
            query: spec.query.clone(),
            candidates: spec.candidates.iter().map(|_| String::new()).collect(),
        })
    }
}

/// One candidate in a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateText {
    /// Its id.
    pub id: u32,
    /// Its text.
    pub text: String,
}

/// What a judge receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeRequest {
    /// The session.
    pub session: u64,
    /// The voting agent.
    pub agent: u32,
    /// Its specialisation.
    pub specialization: AgentSpecialization,
    /// The question.
    pub query: String,
    /// The candidates.
    pub candidates: Vec<CandidateText>,
    /// When the session opened (ms since the Unix epoch).
    pub opened_ms: u64,
    /// The session deadline, relative to `opened_ms`.
    pub deadline_ms: u64,
}

/// What a judge answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeVote {
    /// Score per candidate id (as a string key), in [0, 1].
    #[serde(default)]
    pub scores: BTreeMap<String, f64>,
    /// Confidence in [0, 1].
    #[serde(default)]
    pub confidence: f64,
    /// Free text.
    #[serde(default)]
    pub reasoning: String,
    /// Set to abstain, with the reason.
    #[serde(default)]
    pub abstain: Option<String>,
}

fn ppm(x: f64) -> Option<Ppm> {
    (x.is_finite() && (0.0..=1.0).contains(&x)).then(|| Ppm::saturating((x * 1_000_000.0).round() as u64))
}

/// Turns a judge's answer into the agent's vote; `Err(reason)` when it is not a valid vote.
pub fn vote_from_judge(
    answer: &JudgeVote,
    spec: &SessionSpec,
    agent: AgentId,
    specialization: AgentSpecialization,
    now_ms: u64,
) -> Result<AgentVote, String> {
    if let Some(reason) = &answer.abstain {
        return Ok(abstention(spec, agent, specialization, now_ms, reason));
    }
    let confidence = ppm(answer.confidence).ok_or("confidence outside [0, 1]")?;
    let mut scores = BTreeMap::new();
    for (key, score) in &answer.scores {
        let id = key.trim().parse::<u32>().map_err(|_| format!("score key {key:?} is not a candidate id"))?;
        if spec.candidates.binary_search(&CandidateId(id)).is_err() {
            return Err(format!("candidate {id} is not in the session"));
        }
        scores.insert(CandidateId(id), ppm(*score).ok_or_else(|| format!("score of {id} outside [0, 1]"))?);
    }
    let mut best: Option<(CandidateId, Ppm)> = None;
    for (&c, &s) in &scores {
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((c, s));
        }
    }
    let (candidate, score) = best.ok_or("no scores")?;
    Ok(AgentVote {
        agent,
        specialization,
        session: spec.session,
        candidate,
        confidence,
        value: VoteValue::Accept { score, priority: Priority::High },
        scores,
        reasoning: answer.reasoning.chars().take(1_000).collect(),
        timestamp_ms: now_ms,
        metadata: BTreeMap::new(),
    })
}

/// An abstention vote.
pub fn abstention(
    spec: &SessionSpec,
    agent: AgentId,
    specialization: AgentSpecialization,
    now_ms: u64,
    reason: &str,
) -> AgentVote {
    let reason: String = reason.chars().take(500).collect();
    AgentVote {
        agent,
        specialization,
        session: spec.session,
        candidate: spec.candidates.first().copied().unwrap_or_default(),
        confidence: Ppm::ZERO,
        value: VoteValue::Abstain { reason: reason.clone() },
        scores: BTreeMap::new(),
        reasoning: reason,
        timestamp_ms: now_ms,
        metadata: BTreeMap::new(),
    }
}

/// The synthetic judge's ground truth for a session: the candidate whose text (or id) hashes
/// highest with the query is clearly best (0.95); the others score 0.5 and below.
fn synthetic_truth(spec: &SessionSpec) -> TableTruth {
    let envelope = QueryEnvelope::of(spec);
    let mut ranked: Vec<([u8; 32], CandidateId)> = spec
        .candidates
        .iter()
        .map(|c| {
            let text = envelope.candidates.get(c.0 as usize).cloned().unwrap_or_default();
            let mut h = Sha256::new();
            h.update(envelope.query.as_bytes());
            h.update(c.0.to_be_bytes());
            h.update(text.as_bytes());
            (h.finalize().into(), *c)
        })
        .collect();
    ranked.sort();
    ranked.reverse();
    let mut table = BTreeMap::new();
    for (rank, (_, c)) in ranked.iter().enumerate() {
        let quality = if rank == 0 { 950_000 } else { 500_000u64.saturating_sub(50_000 * rank as u64) };
        table.insert((spec.session, *c), Ppm::saturating(quality));
    }
    TableTruth(table)
}

/// Runs evaluations for one agent.
pub struct EvaluatorTask {
    /// The voting agent.
    pub agent: AgentId,
    /// Its specialisation.
    pub specialization: AgentSpecialization,
    /// Which evaluator.
    pub config: EvaluatorConfig,
    /// The session deadline, passed to judges.
    pub deadline_ms: u64,
    /// Where votes go.
    pub inbox: Inbox,
    /// Counters.
    pub shared: Arc<Shared>,
    /// The clock.
    pub clock: RealClock,
    /// The client of an `http` evaluator (its pool, and the CA it trusts).
    pub http: HttpClient,
}

impl EvaluatorTask {
    /// Serves requests until the channel closes, each on its own task, at most
    /// [`EvaluatorConfig::concurrency`] at once: the others wait their turn in arrival order
    /// (a judge that takes a CPU for seconds, started once per session in flight, would
    /// otherwise make every judge miss its timeout). A session this agent decided while its
    /// evaluation waited is not evaluated: its vote can no longer count.
    pub async fn run(self, mut requests: mpsc::UnboundedReceiver<SessionSpec>) {
        let limit = self.config.concurrency().map(|n| Arc::new(Semaphore::new(n.max(1))));
        let task = Arc::new(self);
        while let Some(spec) = requests.recv().await {
            let task = task.clone();
            let limit = limit.clone();
            tokio::spawn(async move {
                let turn = match limit {
                    Some(limit) => match limit.acquire_owned().await {
                        Ok(permit) => Some(permit),
                        Err(_) => return,
                    },
                    None => None,
                };
                if turn.is_some() && task.shared.is_decided(spec.session) {
                    return;
                }
                task.evaluate(spec).await;
                drop(turn); // the next evaluation starts once this one's vote is sent
            });
        }
    }

    async fn evaluate(&self, spec: SessionSpec) {
        let vote = match &self.config {
            EvaluatorConfig::Synthetic { latency_ms, seed } => self.synthetic(&spec, *latency_ms, *seed).await,
            EvaluatorConfig::Command { argv, timeout_ms, .. } => {
                let answer = run_command(argv, &self.request_json(&spec), Duration::from_millis(*timeout_ms)).await;
                self.judged(&spec, answer)
            }
            EvaluatorConfig::Http { url, timeout_ms, .. } => {
                let body = self.request_json(&spec);
                let answer = self
                    .http
                    .request("POST", url, Some(&body), Duration::from_millis(*timeout_ms))
                    .await
                    .map_err(|e| match e {
                        HttpError::Timeout => ("timeout", "the judge did not answer in time".into()),
                        other => ("failure", other.to_string()),
                    })
                    .and_then(|r| {
                        if r.status == 200 {
                            Ok(r.body)
                        } else {
                            Err(("failure", format!("judge answered HTTP {}", r.status)))
                        }
                    });
                self.judged(&spec, answer)
            }
        };
        let frame = wire::encode(&Message::Vote(SignedVote { vote, signature: Signature::ZERO }));
        let _ = self.inbox.send((LOCAL_EVALUATOR, frame.into())).await;
    }

    async fn synthetic(&self, spec: &SessionSpec, latency: Option<(u64, u64)>, seed: u64) -> AgentVote {
        let mut profile = EvaluatorProfile::seed_default(self.specialization);
        if let Some(range) = latency {
            profile.latency_ms = range;
        }
        let seed = seed ^ (u64::from(self.agent.0) << 32) ^ spec.session.0;
        let mut evaluator = SyntheticEvaluator::new(seed, profile, Arc::new(synthetic_truth(spec)));
        let request = EvaluationRequest {
            spec,
            agent: self.agent,
            specialization: self.specialization,
            now_ms: self.clock.now_ms(),
        };
        let evaluation = evaluator.evaluate(&request);
        if evaluation.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(evaluation.latency_ms)).await;
        }
        evaluation.vote
    }

    fn request_json(&self, spec: &SessionSpec) -> Vec<u8> {
        let envelope = QueryEnvelope::of(spec);
        let request = JudgeRequest {
            session: spec.session.0,
            agent: self.agent.0,
            specialization: self.specialization,
            query: envelope.query,
            candidates: spec
                .candidates
                .iter()
                .map(|c| CandidateText {
                    id: c.0,
                    text: envelope.candidates.get(c.0 as usize).cloned().unwrap_or_default(),
                })
                .collect(),
            opened_ms: spec.opened_ms,
            deadline_ms: self.deadline_ms,
        };
        serde_json::to_vec(&request).unwrap_or_default()
    }

    fn judged(&self, spec: &SessionSpec, answer: Result<Vec<u8>, (&'static str, String)>) -> AgentVote {
        let now = self.clock.now_ms();
        let parsed = answer.and_then(|bytes| {
            let judge: JudgeVote = serde_json::from_slice(&bytes)
                .map_err(|e| ("bad-output", format!("judge output is not a vote: {e}")))?;
            vote_from_judge(&judge, spec, self.agent, self.specialization, now).map_err(|e| ("bad-output", e))
        });
        match parsed {
            Ok(vote) => vote,
            Err((kind, reason)) => {
                self.shared.counters.abstentions.get_or_create(&vec![("reason", kind.to_owned())]).inc();
                eprintln!("agent {}: session {}: abstaining: {reason}", self.agent.0, spec.session.0);
                abstention(spec, self.agent, self.specialization, now, &reason)
            }
        }
    }
}

/// Runs `argv` with `input` on stdin; its stdout, or why not.
async fn run_command(argv: &[String], input: &[u8], timeout: Duration) -> Result<Vec<u8>, (&'static str, String)> {
    let (program, args) = argv.split_first().ok_or(("failure", "empty argv".to_owned()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ("failure", format!("cannot run {program}: {e}")))?;
    let mut stdin = child.stdin.take().ok_or(("failure", "no stdin".to_owned()))?;
    let mut stdout = child.stdout.take().ok_or(("failure", "no stdout".to_owned()))?;
    let work = async {
        stdin.write_all(input).await.map_err(|e| ("failure", e.to_string()))?;
        drop(stdin);
        let mut out = Vec::new();
        (&mut stdout).take(1 << 20).read_to_end(&mut out).await.map_err(|e| ("failure", e.to_string()))?;
        let status = child.wait().await.map_err(|e| ("failure", e.to_string()))?;
        if !status.success() {
            return Err(("failure", format!("{program} exited with {status}")));
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(("timeout", format!("{program} did not answer within {} ms", timeout.as_millis()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_core::SessionId;

    fn spec() -> SessionSpec {
        SessionSpec {
            session: SessionId(4),
            query: "q".into(),
            candidates: vec![CandidateId(0), CandidateId(1)],
            opened_ms: 0,
        }
    }

    #[test]
    fn judge_votes_become_agent_votes_or_errors() {
        let spec = spec();
        let judge = JudgeVote {
            scores: [("0".to_owned(), 0.2), ("1".to_owned(), 0.9)].into_iter().collect(),
            confidence: 0.8,
            ..JudgeVote::default()
        };
        let vote = vote_from_judge(&judge, &spec, AgentId(1), AgentSpecialization::Analyzer, 5);
        assert_eq!(vote.as_ref().map(|v| v.candidate), Ok(CandidateId(1)));
        let bad = JudgeVote { confidence: 1.5, ..judge.clone() };
        assert!(vote_from_judge(&bad, &spec, AgentId(1), AgentSpecialization::Analyzer, 5).is_err());
        let mut unknown = judge.clone();
        unknown.scores.insert("7".into(), 0.1);
        assert!(vote_from_judge(&unknown, &spec, AgentId(1), AgentSpecialization::Analyzer, 5).is_err());
        let abstain = JudgeVote { abstain: Some("unsure".into()), ..JudgeVote::default() };
        let vote = vote_from_judge(&abstain, &spec, AgentId(1), AgentSpecialization::Analyzer, 5);
        assert!(matches!(vote.map(|v| v.value), Ok(VoteValue::Abstain { .. })));
    }

    #[test]
    fn synthetic_truth_has_one_clear_winner() {
        let truth = synthetic_truth(&spec());
        let best = truth.0.values().filter(|q| q.raw() == 950_000).count();
        assert_eq!(best, 1);
    }
}
