//! The evidence invariants: what honest agents report as proof of Byzantine behaviour
//! (consensus-core `protocol::Evidence`, docs/protocol.md L9, L22, L32) is sound, and
//! complete for what they receive.
//!
//! - `evidence-sound`, checked at each piece of evidence an honest agent emits: it never
//!   convicts an honest agent, and it proves what it says. Two conflicting votes or round votes
//!   carry both messages: same signer, same session (and round and kind), different signed
//!   content, both signatures valid. Conflicting proposals carry no messages, only (proposer,
//!   session, round): the oracle must itself have seen two different proposals of that
//!   proposer for that round, each validly signed by it, delivered to some agent. Signatures
//!   are verified with signing bytes the oracle encodes itself (the tags and the postcard
//!   encoding of docs/protocol.md, "Signatures"; the value id is its own SHA-256 too), not with
//!   `wire::*_signing_bytes` or `ValueId::of`, so a change to the agents' encoding cannot
//!   blind it: the unit test `own_signing_bytes_equal_the_wire_encoding` ties the two.
//!
//! - `equivocation-detected`, checked when it is owed: an honest agent that is delivered (and
//!   decodes) two conflicting, validly signed messages of one agent emits evidence for them.
//!   What the protocol keeps decides exactly when evidence is owed; the judged class is:
//!   - the receiver is honest, has never been down (a crash or a stop; a restarted agent's
//!     state comes from its log or snapshot, which the oracle does not see), and agreement is
//!     promised (the oracle's registry epochs are then the agents');
//!   - the signer is not honest (an honest signer never equivocates: that is
//!     `no-equivocation-across-restarts`, and evidence against it `evidence-sound`) and is a
//!     member of the session's committee, in the oracle's epoch of the session (an epoch it no
//!     longer keeps is not judged);
//!   - at both deliveries the receiver has not decided the session (decided sessions ignore
//!     what arrives, L66) and has decided every session before its epoch (otherwise the
//!     message waits in a bounded buffer for the epoch, and may never be handled);
//!   - votes (L9): two different signed votes of one signer for the session. The agent
//!     compares each with the first it kept, so whichever it kept, one of the two differs;
//!   - round votes (L32): two different values of one signer for one (round, kind), the round
//!     at most one above the highest round of the receiver's own round votes so far (the vote
//!     keeper admits every round up to `round_p + 1`; it bounds the rounds beyond that per
//!     signer). Any new value beside a held one is reported, kept or over the per-signer bound;
//!   - proposals (L22): two proposals of the round's proposer for one round, both validly
//!     signed, that differ in what the proposer signed (valid round, value id; the polka
//!     certificate is not signed, and a relay may change it); under the
//!     `pol-round-zero-rejected` mutation a proposal of valid round 0 is not one the agent
//!     takes.
//!
//!   Evidence discharges the obligation whenever the agent emitted it (before, when a carried
//!   vote or a polka certificate gave it the other side first, or in the step that handles the
//!   second message). The obligation is judged when the receiver's next input (a delivery, a
//!   timer, its own vote) is reported, i.e. once the step that handled the second message has
//!   performed all its outputs; a step cut by the end of the run or by a crash is not judged.
//!   Messages carried inside others (a proposal's votes and polka certificate, a commit's
//!   precommits) are not in the class: the agent compares only some of them.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{Committee, Evidence, Message, Mutation, Round, SignedVote, VoteKind};
use consensus_core::sign::{Signature, Verifier};
use consensus_core::{AgentId, SessionId, TimeMs};
use sha2::{Digest, Sha256};

use super::{names, signing, Oracle};

/// What a piece of evidence is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum About {
    /// The session vote.
    Vote,
    /// A prevote or precommit of a round.
    RoundVote(Round, VoteKind),
    /// The proposal of a round.
    Proposal(Round),
}

impl std::fmt::Display for About {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            About::Vote => write!(f, "votes"),
            About::RoundVote(r, VoteKind::Prevote) => write!(f, "prevotes of round {r}"),
            About::RoundVote(r, VoteKind::Precommit) => write!(f, "precommits of round {r}"),
            About::Proposal(r) => write!(f, "proposals of round {r}"),
        }
    }
}

/// (session, signer, what): the subject of evidence and of an obligation.
pub(super) type Subject = (SessionId, AgentId, About);

/// The subject `e` convicts its culprit of.
pub(super) fn subject(e: &Evidence) -> Subject {
    match e {
        Evidence::ConflictingVotes { first, .. } => (first.vote.session, first.vote.agent, About::Vote),
        Evidence::ConflictingRoundVotes { first, .. } => {
            (first.session, first.agent, About::RoundVote(first.round, first.kind))
        }
        Evidence::ConflictingProposals { proposer, session, round } => (*session, *proposer, About::Proposal(*round)),
    }
}

/// Evidence owed by an agent since a delivery.
#[derive(Clone, Copy, Debug)]
struct Owed {
    subject: Subject,
    step: u64,
}

/// An honest agent's decided sessions: the contiguous prefix and those above it.
#[derive(Default)]
struct Decided {
    prefix: u64,
    above: BTreeSet<SessionId>,
}

impl Decided {
    fn contains(&self, s: SessionId) -> bool {
        s.0 < self.prefix || self.above.contains(&s)
    }
}

/// The state of both evidence invariants.
#[derive(Default)]
pub(super) struct EvidenceChecks {
    /// Distinct validly signed proposals (digests of their signing bytes) of non-honest
    /// proposers per (session, round, proposer), at most two, from every delivery.
    proposals: BTreeMap<(SessionId, Round, AgentId), Vec<[u8; 32]>>,
    /// Honest agents that have been down: no longer judged by `equivocation-detected`.
    down: BTreeSet<AgentId>,
    /// Each honest agent's decided sessions.
    decided: BTreeMap<AgentId, Decided>,
    /// The highest round of each honest agent's own round votes, per session.
    own_round: BTreeMap<(AgentId, SessionId), Round>,
    /// The first message of each subject delivered to each honest agent in the judged class
    /// (a digest of what the agent compares).
    first: BTreeMap<(AgentId, SessionId, AgentId, About), [u8; 32]>,
    /// The subjects each honest agent emitted evidence for.
    emitted: BTreeSet<(AgentId, Subject)>,
    /// Subjects already owed (each is owed once).
    owed_once: BTreeSet<(AgentId, Subject)>,
    /// Evidence owed since the agent's last input, judged at its next.
    owed: BTreeMap<AgentId, Vec<Owed>>,
}

impl EvidenceChecks {
    /// `agent` went down (crash, stop).
    pub(super) fn on_down(&mut self, agent: AgentId) {
        self.down.insert(agent);
        self.owed.remove(&agent);
    }

    /// Honest `agent` decided `session`.
    pub(super) fn on_decided(&mut self, agent: AgentId, session: SessionId) {
        let d = self.decided.entry(agent).or_default();
        d.above.insert(session);
        while d.above.remove(&SessionId(d.prefix)) {
            d.prefix += 1;
        }
        // Nothing delivered for a decided session is judged any more.
        let from = (agent, session, AgentId(0), About::Vote);
        let keys: Vec<_> =
            self.first.range(from..).take_while(|(k, _)| k.0 == agent && k.1 == session).map(|(k, _)| *k).collect();
        for k in keys {
            self.first.remove(&k);
        }
    }

    /// Honest `agent` sent its own round vote of `round` in `session`.
    pub(super) fn on_own_round_vote(&mut self, agent: AgentId, session: SessionId, round: Round) {
        let r = self.own_round.entry((agent, session)).or_default();
        *r = (*r).max(round);
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Oracle {
    fn signed_by(&self, agent: AgentId, bytes: &[u8], signature: &Signature) -> bool {
        self.keyring.verify(agent, bytes, signature)
    }

    /// `agent` is about to handle its next input (a delivery, a timer, its own vote): the
    /// evidence its previous steps owed must have been emitted (`equivocation-detected`).
    pub fn on_input(&mut self, agent: AgentId, step: u64, now: TimeMs) {
        let Some(owed) = self.evidence.owed.remove(&agent) else { return };
        let missing = owed.iter().find(|o| !self.evidence.emitted.contains(&(agent, o.subject)));
        if let Some(o) = missing {
            let (session, signer, about) = o.subject;
            let detail = format!(
                "{agent}, honest, was delivered two conflicting {about} of {signer} in {session}, both validly \
                 signed (the second at step {}), and emitted no evidence for them",
                o.step
            );
            self.violate(names::EQUIVOCATION_DETECTED, step, now, detail);
        }
    }

    /// `message` was delivered to `agent` (accepted by its decoder) at trace `step`.
    pub fn on_deliver(&mut self, agent: AgentId, message: &Message, step: u64) {
        let Some((subject, seen)) = self.conflict_subject(agent, message) else { return };
        let (session, signer, about) = subject;
        let first = *self.evidence.first.entry((agent, session, signer, about)).or_insert(seen);
        let key = (agent, subject);
        if first != seen && !self.evidence.owed_once.contains(&key) {
            self.evidence.owed_once.insert(key);
            self.evidence.owed.entry(agent).or_default().push(Owed { subject, step });
        }
    }

    /// The subject and the digest of what the agent compares, when `message` delivered to
    /// `agent` is in `equivocation-detected`'s class (and, for proposals of non-honest
    /// proposers to anyone, notes it for `evidence-sound`).
    fn conflict_subject(&mut self, agent: AgentId, message: &Message) -> Option<(Subject, [u8; 32])> {
        let honest_receiver = self.honest.contains(&agent);
        let (session, signer, about, seen) = match message {
            Message::Vote(v) => {
                if !honest_receiver || self.honest.contains(&v.vote.agent) {
                    return None;
                }
                let bytes = signing::vote(&v.vote);
                if !self.signed_by(v.vote.agent, &bytes, &v.signature) {
                    return None;
                }
                (v.vote.session, v.vote.agent, About::Vote, digest(&bytes))
            }
            Message::RoundVote(v) => {
                if !honest_receiver || self.honest.contains(&v.agent) {
                    return None;
                }
                let own = self.evidence.own_round.get(&(agent, v.session)).copied().unwrap_or(0);
                if v.round > own.saturating_add(1) {
                    return None;
                }
                let bytes = signing::round_vote(v.kind, v.session, v.round, v.value);
                if !self.signed_by(v.agent, &bytes, &v.signature) {
                    return None;
                }
                (v.session, v.agent, About::RoundVote(v.round, v.kind), digest(&bytes))
            }
            Message::Proposal(p) => {
                if self.honest.contains(&p.proposer) {
                    return None;
                }
                // Two proposals differ in what the proposer signed (valid round, value id), never
                // in the polka certificate, which is not signed and which any relay may change
                // (docs/protocol.md, "Evidence").
                let bytes = signing::proposal(p.value.session, p.round, p.valid_round, signing::value_id(&p.value));
                if !self.signed_by(p.proposer, &bytes, &p.signature) {
                    return None;
                }
                let whole = digest(&bytes);
                let seen = self.evidence.proposals.entry((p.value.session, p.round, p.proposer)).or_default();
                if seen.len() < 2 && !seen.contains(&whole) {
                    seen.push(whole);
                }
                let refused = self.protocol.mutation == Mutation::PolRoundZeroRejected && p.valid_round == Some(0);
                if !honest_receiver || refused {
                    return None;
                }
                (p.value.session, p.proposer, About::Proposal(p.round), whole)
            }
            _ => return None,
        };
        if !self.promises.agreement || self.evidence.down.contains(&agent) {
            return None;
        }
        let decided = self.evidence.decided.get(&agent);
        let epoch = self.epoch_of(session);
        let ready = decided.map_or(0, |d| d.prefix) >= epoch;
        if !ready || decided.is_some_and(|d| d.contains(session)) {
            return None;
        }
        let committee = Committee::of(self.epochs.get(&epoch)?, self.protocol.mutation);
        let member = match about {
            About::Proposal(round) => committee.proposer(session, round) == Some(signer),
            _ => committee.contains(signer),
        };
        member.then_some(((session, signer, about), seen))
    }

    /// Honest `agent` emitted evidence `e` (`evidence-sound`).
    pub fn on_evidence(&mut self, agent: AgentId, e: &Evidence, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        let subject = subject(e);
        self.evidence.emitted.insert((agent, subject));
        if let Some(problem) = self.unsound(e) {
            let (session, culprit, about) = subject;
            let detail = format!(
                "{agent}, honest, emitted evidence convicting {culprit} of conflicting {about} in {session}: {problem}"
            );
            self.violate(names::EVIDENCE_SOUND, step, now, detail);
        }
    }

    /// Why evidence `e` proves nothing, if it does not.
    fn unsound(&self, e: &Evidence) -> Option<String> {
        let culprit = e.culprit();
        if self.honest.contains(&culprit) {
            return Some(format!("{culprit} is honest"));
        }
        match e {
            Evidence::ConflictingVotes { first, second } => self.unsound_votes(first, second),
            Evidence::ConflictingRoundVotes { first, second } => {
                let same = first.agent == second.agent
                    && first.session == second.session
                    && first.round == second.round
                    && first.kind == second.kind;
                if !same {
                    return Some("the two round votes are not of one signer, session, round and kind".into());
                }
                if first.value == second.value {
                    return Some("the two round votes are for the same value".into());
                }
                [first, second]
                    .iter()
                    .any(|v| {
                        !self.signed_by(
                            v.agent,
                            &signing::round_vote(v.kind, v.session, v.round, v.value),
                            &v.signature,
                        )
                    })
                    .then(|| format!("a round vote is not signed by {}", first.agent))
            }
            Evidence::ConflictingProposals { proposer, session, round } => {
                let seen = self.evidence.proposals.get(&(*session, *round, *proposer)).map_or(0, Vec::len);
                (seen < 2).then(|| {
                    format!("no two different proposals of round {round} validly signed by {proposer} were delivered")
                })
            }
        }
    }

    fn unsound_votes(&self, first: &SignedVote, second: &SignedVote) -> Option<String> {
        if first.vote.agent != second.vote.agent || first.vote.session != second.vote.session {
            return Some("the two votes are not of one signer and session".into());
        }
        if first.vote == second.vote {
            return Some("the two votes say the same".into());
        }
        [first, second]
            .iter()
            .any(|v| !self.signed_by(v.vote.agent, &signing::vote(&v.vote), &v.signature))
            .then(|| format!("a vote is not signed by {}", first.vote.agent))
    }
}
