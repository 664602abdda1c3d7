//! `honest-proposal-valid`: an honest proposer's proposal passes the V-checks (docs/protocol.md
//! V1–V7), checked by the oracle when the proposal leaves its proposer.
//!
//! Why it is sound: an honest proposer builds its value from what it verified itself (the
//! client-signed spec, L1; votes verified at L7–L8) and computes the claimed outcome with the
//! same `outcome(mode, votes)` every agent recomputes (V5–V6), against the registry epoch of the
//! session; or it re-proposes its `validValue` (L15), which it took only from a value it found
//! valid (L36). Validity is a function of the value and of the session's registry epoch, and
//! the oracle keeps that epoch independently (applying each session's first decision, as
//! agents do), so while agreement holds its verdict is the one every honest agent reaches. The
//! check is therefore skipped where agreement is not promised (more Byzantine agents than
//! `2q − n` allows), and V8 (the deadline, a clock check an agent makes with its own clock: it
//! may refuse a fallback value now and accept it later) is not part of it. An epoch the oracle
//! no longer keeps (or has not reached) is not judged.
//!
//! What it sees that the other invariants do not: a proposal every honest agent refuses costs a
//! round, which the liveness bound absorbs, so a proposer that proposes too early (fewer than q
//! votes), with a wrong tally or with a vote it never verified is otherwise invisible.

use consensus_core::config::FallbackPolicy;
use consensus_core::protocol::messages::{Proposal, ProposalValue};
use consensus_core::protocol::{recompute, AgreedOutcome, Committee, Mutation, ProposalMode, Round};
use consensus_core::registry::Registry;
use consensus_core::sign::Verifier;
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{names, signing, Oracle};
use crate::words;

impl Oracle {
    /// `agent` sent `proposal` (`honest-proposal-valid`): when it is honest and the proposal its
    /// own, the value must pass V1–V7 and the proposal carry its signature (verified over the
    /// oracle's own [`signing`] bytes). Each (session, round) is judged once, at its first send.
    /// Then `valid-value` ([`Oracle::locks_on_proposal_sent`]) judges the same proposal.
    pub fn on_proposal_sent(&mut self, agent: AgentId, proposal: &Proposal, step: u64, now: TimeMs) {
        if proposal.proposer != agent || !self.honest.contains(&agent) {
            return;
        }
        self.round_skip_on_own_proposal(agent, proposal);
        if !self.promises.agreement {
            return;
        }
        let session = proposal.value.session;
        if !self.proposals_checked.insert((session, proposal.round, agent)) {
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(session)) else {
            self.steps_on_proposal(agent, proposal, step, now);
            return;
        };
        let bytes =
            signing::proposal(session, proposal.round, proposal.valid_round, signing::value_id(&proposal.value));
        let problem = self.invalid_because(session, &proposal.value, registry).or_else(|| {
            let signed = self.keyring.verify(agent, &bytes, &proposal.signature);
            (!signed).then(|| "its signature does not verify over the proposal (signing format)".to_string())
        });
        if let Some(problem) = problem {
            let detail = format!(
                "{agent}, honest, proposed in round {} of {session} a proposal every honest agent must refuse: {problem}",
                proposal.round
            );
            self.violate(names::HONEST_PROPOSAL_VALID, step, now, detail);
            return;
        }
        // `step-justified` judges when it proposed, once the proposal is known to be valid.
        self.steps_on_proposal(agent, proposal, step, now);
    }

    /// The first V-check (V1–V7) `value` fails for `session` against its epoch `registry`.
    fn invalid_because(&self, session: SessionId, value: &ProposalValue, registry: &Registry) -> Option<String> {
        let spec = &value.spec;
        if value.session != session {
            return Some(format!("V1: the value names {}", value.session));
        }
        if let Some(problem) = self.not_the_clients_spec(session, spec) {
            return Some(format!("V1: {problem}"));
        }
        let committee = Committee::of(registry, Mutation::None);
        if value.votes.len() < committee.vote_q {
            return Some(format!("V2: {} votes, the quorum is {}", value.votes.len(), committee.vote_q));
        }
        if !value.votes.windows(2).all(|w| w[0].vote.agent < w[1].vote.agent) {
            return Some("V2: its votes are not from distinct agents in ascending order".into());
        }
        if let Some(v) = value.votes.iter().find(|v| v.vote.session != session || !committee.contains(v.vote.agent)) {
            return Some(format!("V2: the vote of {} is not a vote of this session's committee", v.vote.agent));
        }
        let forged =
            value.votes.iter().find(|v| !self.keyring.verify(v.vote.agent, &signing::vote(&v.vote), &v.signature));
        if let Some(v) = forged {
            return Some(format!("V3: the vote of {} is not signed by it", v.vote.agent));
        }
        let outcome = |mode| recompute(mode, spec, &value.votes, registry, &self.engine).0;
        let normal = outcome(ProposalMode::Normal);
        let expected = match value.mode {
            ProposalMode::Normal => normal,
            ProposalMode::Fallback => {
                let allowed = self.engine.fallback == FallbackPolicy::SimpleMajority
                    && !matches!(normal, AgreedOutcome::Decided { .. });
                if !allowed {
                    return Some("V7: a fallback value where the engine decides or the policy is off".into());
                }
                outcome(ProposalMode::Fallback)
            }
        };
        (expected != value.outcome).then(|| {
            format!(
                "V4: it claims {} but its {} votes give {}",
                words::outcome(&value.outcome),
                value.votes.len(),
                words::outcome(&expected)
            )
        })
    }
}

/// What [`Oracle::on_proposal_sent`] keys its once-per-round check by.
pub(super) type Checked = (SessionId, Round, AgentId);
