//! Builders shared by the integration tests.

use consensus_core::{AgentId, AgentSpecialization, AgentVote, CandidateId, Ppm, SessionId};

pub fn ppm(x: f64) -> Ppm {
    Ppm::from_f64(x).unwrap_or_else(|| panic!("{x} is not in [0, 1]"))
}

/// An accept vote from agent `agent` (specialisation cycled from its id).
pub fn accept(session: SessionId, agent: u32, candidate: u32, score: f64, confidence: f64) -> AgentVote {
    AgentVote::accept(
        AgentId(agent),
        AgentSpecialization::cycled(agent as usize),
        session,
        CandidateId(candidate),
        ppm(score),
        ppm(confidence),
    )
}
