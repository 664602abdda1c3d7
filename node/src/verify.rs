//! Offline verification of a commit certificate against the cluster's public keys.
//!
//! A certificate proves a decision when: the client signed the session spec; the proposer of
//! its round signed the proposal; the value carries at least q votes of distinct committee
//! members, each signed and bound to the session; and at least q distinct committee members
//! signed a precommit for the value's id, all in one round. `q` is the quorum of the genesis
//! committee written in the configuration (a registry that excluded agents later has a smaller
//! committee; such certificates are reported as short of the quorum).

use std::collections::BTreeSet;

use consensus_core::protocol::{AgreedOutcome, Commit, ValueId, VoteKind};
use consensus_core::quorum::quorum_for;
use consensus_core::sign::{Ed25519Keyring, Verifier};
use consensus_core::{wire, AgentId, SessionId};

/// Why a certificate does not prove its decision.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The client's signature on the session spec does not verify.
    #[error("the session spec is not signed by the cluster client")]
    BadSpec,
    /// The proposer's signature does not verify.
    #[error("the proposal is not signed by agent {0}")]
    BadProposal(u32),
    /// A vote is invalid.
    #[error("vote of agent {agent} is invalid: {why}")]
    BadVote {
        /// Whose.
        agent: u32,
        /// Why.
        why: &'static str,
    },
    /// A precommit is invalid.
    #[error("precommit of agent {agent} is invalid: {why}")]
    BadPrecommit {
        /// Whose.
        agent: u32,
        /// Why.
        why: &'static str,
    },
    /// Fewer than q.
    #[error("{what}: {have} of the {need} needed")]
    ShortOfQuorum {
        /// Votes or precommits.
        what: &'static str,
        /// Present and valid.
        have: usize,
        /// Quorum.
        need: usize,
    },
}

/// What a valid certificate proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The session.
    pub session: SessionId,
    /// The round decided in.
    pub round: u32,
    /// The decided outcome.
    pub outcome: AgreedOutcome,
    /// Agents whose precommits are in the certificate.
    pub signers: Vec<AgentId>,
}

/// Checks `commit` against `keyring` (agents and `AgentId::CLIENT`) and the committee `members`.
pub fn verify_certificate(
    commit: &Commit,
    keyring: &Ed25519Keyring,
    members: &[AgentId],
) -> Result<Verified, VerifyError> {
    let need = usize::try_from(quorum_for(members.len() as u64).unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    let value = &commit.proposal.value;
    let session = value.session;
    let spec = &value.spec;
    if spec.spec.session != session
        || !keyring.verify(AgentId::CLIENT, &wire::spec_signing_bytes(&spec.spec), &spec.signature)
    {
        return Err(VerifyError::BadSpec);
    }
    let p = &commit.proposal;
    let proposal_bytes = wire::proposal_signing_bytes(value, p.round, p.valid_round);
    if !members.contains(&p.proposer) || !keyring.verify(p.proposer, &proposal_bytes, &p.signature) {
        return Err(VerifyError::BadProposal(p.proposer.0));
    }
    let mut voters = BTreeSet::new();
    for v in &value.votes {
        let agent = v.vote.agent;
        let why = if v.vote.session != session {
            Some("another session")
        } else if !members.contains(&agent) {
            Some("not a committee member")
        } else if !voters.insert(agent) {
            Some("counted twice")
        } else if !keyring.verify(agent, &wire::vote_signing_bytes(&v.vote), &v.signature) {
            Some("bad signature")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(VerifyError::BadVote { agent: agent.0, why });
        }
    }
    if voters.len() < need {
        return Err(VerifyError::ShortOfQuorum { what: "votes", have: voters.len(), need });
    }
    let id = ValueId::of(value);
    let round = commit.precommits.first().map_or(p.round, |c| c.round);
    let mut signers = BTreeSet::new();
    for c in &commit.precommits {
        let why = if c.kind != VoteKind::Precommit {
            Some("not a precommit")
        } else if c.session != session || c.round != round {
            Some("another session or round")
        } else if c.value != Some(id) {
            Some("for another value")
        } else if !members.contains(&c.agent) {
            Some("not a committee member")
        } else if !signers.insert(c.agent) {
            Some("counted twice")
        } else if !keyring.verify(
            c.agent,
            &wire::round_vote_signing_bytes(c.kind, c.session, c.round, c.value),
            &c.signature,
        ) {
            Some("bad signature")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(VerifyError::BadPrecommit { agent: c.agent.0, why });
        }
    }
    if signers.len() < need {
        return Err(VerifyError::ShortOfQuorum { what: "precommits", have: signers.len(), need });
    }
    Ok(Verified { session, round, outcome: value.outcome.clone(), signers: signers.into_iter().collect() })
}
