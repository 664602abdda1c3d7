//! Workspace-level integration tests for bftsim. The tests live in `tests/main.rs`; this
//! library holds the helpers they share.

use std::collections::BTreeMap;

use consensus_core::{AgentId, AgentSpecialization, AgentVote, CandidateId, Ppm, SessionId};

/// An accept vote for `pick` carrying per-candidate `scores` (ppm), with the agent's cycled
/// specialisation.
pub fn scored_vote(session: SessionId, agent: u32, pick: u32, scores: &[u32], confidence: u32) -> AgentVote {
    let scores: BTreeMap<CandidateId, Ppm> =
        scores.iter().enumerate().map(|(i, s)| (CandidateId(i as u32), Ppm::saturating(u64::from(*s)))).collect();
    let score = scores.get(&CandidateId(pick)).copied().unwrap_or(Ppm::ZERO);
    let mut v = AgentVote::accept(
        AgentId(agent),
        AgentSpecialization::cycled(agent as usize),
        session,
        CandidateId(pick),
        score,
        Ppm::saturating(u64::from(confidence)),
    );
    v.scores = scores;
    v
}
