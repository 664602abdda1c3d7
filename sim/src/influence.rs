//! Byzantine influence, measured: what the engine gives on the honest agents' votes alone, and
//! how many honest votes separated the best candidate from the chosen one (the honest margin).
//!
//! At a session's first honest decision the oracle keeps the session's registry epoch; once
//! every honest agent has voted (or at the end of the run, with the votes cast) the engine runs
//! on the honest votes alone ([`HonestReference::settle`]). A session whose first decision
//! differs from that verdict was changed by the Byzantine agents (influenced). A wrong decision
//! (a candidate other than the best) is then caused by the Byzantine agents when influenced,
//! and by the honest agents themselves (evaluator noise, close candidates) when not.
//!
//! The influence bound (docs/protocol.md, "What a Byzantine proposer can still do"): with `b`
//! Byzantine agents of a committee of `n` (`b ≤ f_max`), a plurality-based decision for a
//! candidate other than the best needs the honest margin to be at most
//! [`influence_bound`]`(n, b)`; the oracle checks it as the invariant `influence-bound`.

use std::collections::BTreeMap;

use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::config::AgreementBasis;
use consensus_core::policies::fallback_consensus;
use consensus_core::protocol::ProposalMode;
use consensus_core::registry::Registry;
use consensus_core::types::{AgentVote, Decision};
use consensus_core::{AgentId, CandidateId, EngineConfig, SessionId};

/// What a session came to, coarsely: a candidate, or none (escalated or agreed "no decision").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Decided for this candidate.
    Decided(CandidateId),
    /// Escalated or no decision.
    Unresolved,
}

impl Verdict {
    /// The verdict of an agreed outcome.
    pub fn of(outcome: &consensus_core::protocol::AgreedOutcome) -> Verdict {
        outcome.chosen().map_or(Verdict::Unresolved, Verdict::Decided)
    }
}

/// What a session's honest-votes reference needs once its honest votes are in.
struct Pending {
    registry: Registry,
    candidates: Vec<CandidateId>,
    mode: ProposalMode,
}

/// The engine's verdict on the honest votes alone, per decided session (runs with Byzantine
/// agents only: without them every vote is honest and nothing is influenced).
pub struct HonestReference {
    engine: EngineConfig,
    honest: usize,
    /// The honest agents' own votes, per session, until the session is settled.
    ballots: BTreeMap<SessionId, BTreeMap<AgentId, AgentVote>>,
    /// Decided sessions whose reference waits for honest votes.
    pending: BTreeMap<SessionId, Pending>,
    verdicts: BTreeMap<SessionId, Verdict>,
}

impl HonestReference {
    /// A reference for a run with `honest` honest agents.
    pub fn new(engine: EngineConfig, honest: usize) -> HonestReference {
        HonestReference {
            engine,
            honest,
            ballots: BTreeMap::new(),
            pending: BTreeMap::new(),
            verdicts: BTreeMap::new(),
        }
    }

    /// An honest agent's own vote; returns whether it completed a pending session (settled).
    pub fn on_vote(&mut self, agent: AgentId, vote: &AgentVote) -> bool {
        if self.verdicts.contains_key(&vote.session) {
            return false;
        }
        self.ballots.entry(vote.session).or_default().insert(agent, vote.clone());
        self.pending.contains_key(&vote.session) && self.settle_if_complete(vote.session)
    }

    /// At a session's first decision: its reference is computed once every honest agent has
    /// voted (at once if they all have, else when the last honest vote comes in, or at
    /// [`HonestReference::settle_all`]), against the session's epoch `registry`. Returns
    /// whether it was settled now.
    pub fn start(
        &mut self,
        session: SessionId,
        registry: Registry,
        candidates: Vec<CandidateId>,
        mode: ProposalMode,
    ) -> bool {
        self.pending.insert(session, Pending { registry, candidates, mode });
        self.settle_if_complete(session)
    }

    fn settle_if_complete(&mut self, session: SessionId) -> bool {
        let voted = self.ballots.get(&session).map_or(0, BTreeMap::len);
        voted >= self.honest && self.settle(session)
    }

    /// Computes the references still waiting for honest votes (at the end of a run: crashed or
    /// slow honest agents never voted), with the votes cast; returns the sessions settled.
    pub fn settle_all(&mut self) -> Vec<SessionId> {
        let sessions: Vec<SessionId> = self.pending.keys().copied().collect();
        sessions.into_iter().filter(|s| self.settle(*s)).collect()
    }

    /// The engine on the honest votes of `session`, the way the protocol would decide them:
    /// normal mode, then the fallback when the decision was a fallback one. Returns whether a
    /// verdict was reached (fewer than q honest votes judge nothing).
    fn settle(&mut self, session: SessionId) -> bool {
        let Some(pending) = self.pending.remove(&session) else { return false };
        let ballots = self.ballots.remove(&session).unwrap_or_default();
        let votes: Vec<AgentVote> = ballots.into_values().collect();
        // Fewer than q honest votes (honest agents crashed, or still evaluating when the run
        // ended): the honest votes alone say nothing yet, so the session is not judged.
        let active = pending.registry.active().count() as u64;
        let q = consensus_core::quorum::quorum_for(active).unwrap_or(u64::MAX);
        if (votes.len() as u64) < q {
            return false;
        }
        let input = SessionInput { session, candidates: &pending.candidates, votes: &votes };
        let mut verdict = match aggregate(&input, &pending.registry, &self.engine).outcome {
            Ok(Decision::Decided(r)) => Verdict::Decided(r.chosen),
            _ => Verdict::Unresolved,
        };
        if verdict == Verdict::Unresolved && pending.mode == ProposalMode::Fallback {
            if let Ok(r) = fallback_consensus(session, &votes) {
                verdict = Verdict::Decided(r.chosen);
            }
        }
        self.verdicts.insert(session, verdict);
        true
    }

    /// The verdict of a settled session.
    pub fn verdict(&self, session: SessionId) -> Option<Verdict> {
        self.verdicts.get(&session).copied()
    }

    /// Whether the engine counts agents (the bound is on vote counts; with agreement by weight
    /// it does not apply).
    pub fn counts_agents(&self) -> bool {
        self.engine.agreement_basis == AgreementBasis::Count
    }
}

/// The honest margin of a decision for `chosen` where `best` was the best candidate: the
/// honest votes for `best` minus those for `chosen` (`votes`: the candidate each honest agent
/// supported, or accepted, as the caller counts them). Negative when the honest agents
/// themselves preferred the chosen candidate.
pub fn margin(votes: impl IntoIterator<Item = Option<CandidateId>>, best: CandidateId, chosen: CandidateId) -> i64 {
    let (mut for_best, mut for_chosen) = (0i64, 0i64);
    for s in votes.into_iter().flatten() {
        for_best += i64::from(s == best);
        for_chosen += i64::from(s == chosen);
    }
    for_best - for_chosen
}

/// The influence bound of the engine's decisions (docs/protocol.md, "What a Byzantine proposer
/// can still do"): with `b ≤ f` Byzantine agents in a committee of `n` (f = f_max(n), q its
/// quorum), a wrong decision the Byzantine agents caused by a plurality-based resolution has
/// an honest margin (in supporting votes) of at most `b + f + (n − q)`: `b` Byzantine votes for
/// the chosen candidate, `n − q` honest votes for the best one left out of the vote set, and
/// `f` more of them removed by the Byzantine filter.
pub fn influence_bound(n: u64, b: u64) -> u64 {
    let f = consensus_core::quorum::f_max(n);
    b.min(f) + f + left_out(n)
}

/// The bound of a timeout-fallback decision (> 50% of the vote set's accepts, no filter):
/// `b + (n − q)` honest accepts.
pub fn fallback_bound(n: u64, b: u64) -> u64 {
    b.min(consensus_core::quorum::f_max(n)) + left_out(n)
}

/// `n − q`: the honest votes a proposer may leave out of a vote set of `q` (L16a).
fn left_out(n: u64) -> u64 {
    n.saturating_sub(consensus_core::quorum::quorum_for(n).unwrap_or(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_from_f_and_the_votes_a_proposer_may_leave_out() {
        // n = 4: f = 1, q = 3. n = 7: f = 2, q = 5. n = 10: f = 3, q = 7.
        assert_eq!((influence_bound(4, 1), fallback_bound(4, 1)), (3, 2));
        assert_eq!((influence_bound(7, 1), influence_bound(7, 2), fallback_bound(7, 2)), (5, 6, 4));
        assert_eq!((influence_bound(10, 1), fallback_bound(10, 1)), (7, 4));
        assert_eq!(influence_bound(7, 9), influence_bound(7, 2), "beyond f_max the bound is not promised");
    }

    #[test]
    fn margins_count_supporters_of_the_best_minus_the_chosen() {
        let (a, b, c) = (CandidateId(0), CandidateId(1), CandidateId(2));
        let supports = [Some(a), Some(a), Some(b), None, Some(c), Some(a)];
        assert_eq!(margin(supports, a, b), 2);
        assert_eq!(margin(supports, b, a), -2);
        assert_eq!(margin(supports, c, a), -2);
        assert_eq!(margin([], a, b), 0);
    }
}
