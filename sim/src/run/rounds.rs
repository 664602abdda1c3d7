//! Round-targeted faults (ByzzFuzz, Winter et al. 2023): `[[round_partitions]]` cut the
//! messages of one round of one session between groups of nodes; `[[tamper]]` rules apply a
//! small-scope mutation to a faulty agent's messages of one round of one session, for some
//! receivers. Every tampered message is re-signed with the agent's own key, and every value it
//! carries is one the agent has seen: nothing a real Byzantine agent could not send.
//!
//! Frames are decoded only when the scenario has such rules, so other runs pay nothing.

use std::collections::BTreeMap;

use consensus_core::protocol::{Message, ProposalValue, ValueId};
use consensus_core::runner::Frame;
use consensus_core::sign::{Signer, SimSigner};
use consensus_core::{wire, AgentId};

use crate::scenario::{NodeRef, RoundPartition, Tamper, TamperAction};

/// What happens to one frame.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Sent as it is.
    Pass,
    /// Sent as this frame instead (what was done).
    Replace(Frame, &'static str),
    /// Not sent (why).
    Drop(&'static str),
}

/// The rules of a run and what the tampering agents have seen and sent.
pub(super) struct RoundFaults {
    partitions: Vec<RoundPartition>,
    tamper: Vec<Tamper>,
    /// The tampering agents' own keys.
    signers: BTreeMap<AgentId, SimSigner>,
    /// Proposal values each tampering agent was sent, per session, in arrival order.
    seen: BTreeMap<(AgentId, u64), Vec<(ValueId, ProposalValue)>>,
    /// Each tampering agent's current and previous distinct frame per (session, kind).
    sent: BTreeMap<(AgentId, u64, &'static str), (Frame, Option<Frame>)>,
}

/// The round of a message: proposals and round votes carry it; session votes are round 0; a
/// decision certificate belongs to the round it was decided in, so a partition of that round
/// also keeps the decision from the other side (as its precommits were kept).
fn round_of(m: &Message) -> Option<u32> {
    match m {
        Message::Proposal(p) => Some(p.round),
        Message::RoundVote(v) => Some(v.round),
        Message::Vote(_) => Some(0),
        Message::Commit(c) => Some(c.proposal.round),
        Message::Open(_) | Message::Sync { .. } | Message::Pruned { .. } => None,
    }
}

impl RoundFaults {
    /// The rules of a scenario, or `None` when it has none.
    pub fn new(
        partitions: Vec<RoundPartition>,
        tamper: Vec<Tamper>,
        signers: BTreeMap<AgentId, SimSigner>,
    ) -> Option<RoundFaults> {
        if partitions.is_empty() && tamper.is_empty() {
            return None;
        }
        Some(RoundFaults { partitions, tamper, signers, seen: BTreeMap::new(), sent: BTreeMap::new() })
    }

    /// The fate of `frame` from `from` to `to`, sent at `now_ms`, under the rules.
    pub fn apply(&mut self, from: NodeRef, to: NodeRef, frame: &Frame, now_ms: u64) -> Verdict {
        let Ok(message) = wire::decode(frame) else { return Verdict::Pass };
        let session = message.session().0;
        let receiver = AgentId(to.agent);
        if let Message::Proposal(p) = &message {
            if self.signers.contains_key(&receiver) {
                let seen = self.seen.entry((receiver, session)).or_default();
                let id = ValueId::of(&p.value);
                if !seen.iter().any(|(v, _)| *v == id) {
                    seen.push((id, p.value.clone()));
                }
            }
        }
        let Some(round) = round_of(&message) else { return Verdict::Pass };
        if self.partitions.iter().any(|p| p.cuts(session, round, from, to, now_ms)) {
            return Verdict::Drop("round partition");
        }
        let sender = AgentId(from.agent);
        if !self.signers.contains_key(&sender) {
            return Verdict::Pass;
        }
        let previous = self.note_sent(sender, session, message.kind(), frame);
        let rule = self
            .tamper
            .iter()
            .find(|t| t.agent == from.agent && t.session == session && t.round == round && t.to.contains(&to.agent));
        let Some(action) = rule.map(|t| t.action) else { return Verdict::Pass };
        self.tampered(sender, session, message, action, previous)
    }

    /// Remembers `frame` as the sender's current frame of its kind; returns the previous one.
    fn note_sent(&mut self, sender: AgentId, session: u64, kind: &'static str, frame: &Frame) -> Option<Frame> {
        let entry = self.sent.entry((sender, session, kind)).or_insert_with(|| (frame.clone(), None));
        if entry.0[..] != frame[..] {
            let old = std::mem::replace(&mut entry.0, frame.clone());
            entry.1 = Some(old);
        }
        entry.1.clone()
    }

    fn tampered(
        &self,
        sender: AgentId,
        session: u64,
        message: Message,
        action: TamperAction,
        previous: Option<Frame>,
    ) -> Verdict {
        let Some(signer) = self.signers.get(&sender) else { return Verdict::Pass };
        let changed = match (action, message) {
            (TamperAction::Omit, _) => return Verdict::Drop("tampered: omitted"),
            (TamperAction::Replay, _) => {
                return match previous {
                    Some(frame) => Verdict::Replace(frame, "replayed its previous message"),
                    None => Verdict::Drop("tampered: nothing to replay, omitted"),
                };
            }
            (TamperAction::RoundUp | TamperAction::RoundDown, Message::RoundVote(mut v)) => {
                v.round = shift(v.round, action);
                v.signature = signer.sign(&wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value));
                Message::RoundVote(v)
            }
            (TamperAction::RoundUp | TamperAction::RoundDown, Message::Proposal(mut p)) => {
                p.round = shift(p.round, action);
                p.valid_round = p.valid_round.filter(|vr| *vr < p.round);
                p.signature = signer.sign(&wire::proposal_signing_bytes(&p.value, p.round, p.valid_round));
                Message::Proposal(p)
            }
            (TamperAction::Nil, Message::RoundVote(mut v)) => {
                v.value = None;
                v.signature = signer.sign(&wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value));
                Message::RoundVote(v)
            }
            (TamperAction::OtherValue, Message::RoundVote(mut v)) => {
                let seen = self.seen.get(&(sender, session));
                v.value = seen.and_then(|s| s.iter().map(|(id, _)| *id).find(|id| Some(*id) != v.value));
                v.signature = signer.sign(&wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value));
                Message::RoundVote(v)
            }
            (TamperAction::OtherValue, Message::Proposal(mut p)) => {
                let current = ValueId::of(&p.value);
                let seen = self.seen.get(&(sender, session));
                let Some((_, other)) = seen.and_then(|s| s.iter().find(|(id, _)| *id != current)) else {
                    return Verdict::Pass;
                };
                p.value = other.clone();
                p.polka.clear();
                p.valid_round = None;
                p.signature = signer.sign(&wire::proposal_signing_bytes(&p.value, p.round, p.valid_round));
                Message::Proposal(p)
            }
            // Session votes have no round to shift and no value id to swap.
            _ => return Verdict::Pass,
        };
        Verdict::Replace(wire::encode(&changed).into(), action.name())
    }
}

fn shift(round: u32, action: TamperAction) -> u32 {
    match action {
        TamperAction::RoundUp => round.saturating_add(1),
        _ => round.saturating_sub(1),
    }
}
