//! `deviate`: what the inner honest agent sends is passed, or (with probability `rate`, per
//! message) dropped, delayed, sent to a subset of its recipients only, or replaced for some of
//! them by a conflicting version signed with the agent's own key (an equivocation of its own
//! vote, round vote or proposal). Delayed messages wait in a bounded queue ([`MAX_HELD`]) and
//! leave at the first input or own wake-up at or after their release time.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::actions::{emit, halves, To};
use super::{build, chance, index, Env, Family, FullPower, MAX_HELD};
use crate::protocol::{Message, Output, Round};
use crate::types::{SessionId, TimeMs};

impl FullPower {
    /// Passes or deviates each of the inner agent's outputs (only messages; timers, decisions,
    /// evaluations and the rest pass unchanged).
    pub(super) fn deviate(&mut self, env: &Env<'_>, produced: Vec<Output>, out: &mut Vec<Output>) {
        if !self.config.on(Family::Deviate) {
            out.extend(produced);
            return;
        }
        for output in produced {
            let (to, message) = match output {
                Output::Broadcast(message) => (To::All, message),
                Output::Send { to, message } => (To::Only(vec![to]), message),
                other => {
                    out.push(other);
                    continue;
                }
            };
            let (session, round) = about(&message, env);
            let mut rng = self.streams.take(session, round, Family::Deviate.purpose());
            if chance(&mut rng, self.config.rate) {
                self.deviate_one(&mut rng, env, to, message, out);
            } else {
                emit(out, &to, message);
            }
            self.streams.put(session, round, Family::Deviate.purpose(), rng);
        }
    }

    fn deviate_one(&mut self, rng: &mut ChaCha8Rng, env: &Env<'_>, to: To, message: Message, out: &mut Vec<Output>) {
        let recipients = match &to {
            To::All => env.peers.to_vec(),
            To::Only(list) => list.clone(),
        };
        match rng.gen_range(0..10) {
            0..=2 => {} // dropped
            3..=4 if self.held.len() < MAX_HELD => {
                let at = env.now.saturating_add(rng.gen_range(1..=3 * env.retransmit_ms));
                let mut held = Vec::new();
                emit(&mut held, &to, message);
                self.held.extend(held.into_iter().map(|o| (at, o)));
            }
            5..=6 => {
                // To a subset of its recipients only.
                let keep: Vec<_> = recipients.into_iter().filter(|_| rng.gen_bool(0.5)).collect();
                emit(out, &To::Only(keep), message);
            }
            _ => match conflicting(rng, env, &message) {
                Some(other) => {
                    // The conflicting version to one side, the original to the other.
                    let (a, b) = halves(rng, env);
                    emit(out, &a, message);
                    emit(out, &b, other);
                }
                None => emit(out, &to, message),
            },
        }
    }

    /// Sends the held messages whose time has come, oldest first.
    pub(super) fn release_due(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        let mut kept = std::collections::VecDeque::with_capacity(self.held.len());
        for (at, output) in self.held.drain(..) {
            if at <= now {
                out.push(output);
            } else {
                kept.push_back((at, output));
            }
        }
        self.held = kept;
    }
}

/// The (session, round) a message is about, for the stream that decides its fate.
fn about(message: &Message, env: &Env<'_>) -> (SessionId, Round) {
    match message {
        Message::Proposal(p) => (p.value.session, p.round),
        Message::RoundVote(v) => (v.session, v.round),
        Message::Sync { .. } => (env.session, env.round),
        m => (m.session(), env.round),
    }
}

/// A version of its own `message` that conflicts with it, signed with its own key: a round
/// vote for another value (nil for a value, a value seen or unknown for nil), a vote for
/// another candidate, a proposal of the same round with one vote fewer or another claimed
/// outcome. `None` for messages that are not its own signed ones.
fn conflicting(rng: &mut ChaCha8Rng, env: &Env<'_>, message: &Message) -> Option<Message> {
    match message {
        Message::RoundVote(v) if v.agent == env.me => {
            let value = match v.value {
                Some(_) if rng.gen_bool(0.5) => None,
                _ => Some(build::unknown_id(rng)),
            };
            Some(Message::RoundVote(build::round_vote(env, v.kind, v.session, v.round, value, env.me)))
        }
        Message::Vote(v) if v.vote.agent == env.me => {
            let candidates: Vec<_> = v.vote.scores.keys().copied().filter(|c| *c != v.vote.candidate).collect();
            let candidate = candidates.get(index(rng, candidates.len())).copied()?;
            let score = v.vote.value.accept_score().unwrap_or(crate::fixed::Ppm::HALF);
            let vote = crate::adversary::accept_for(v.vote.clone(), candidate, score, v.vote.confidence);
            Some(Message::Vote(build::signed_vote(env, vote)))
        }
        Message::Proposal(p) if p.proposer == env.me => {
            let mut value = p.value.clone();
            if value.votes.len() > 1 && rng.gen_bool(0.5) {
                value.votes.remove(index(rng, value.votes.len()));
                value.outcome =
                    crate::protocol::recompute(value.mode, &value.spec, &value.votes, env.registry, env.engine).0;
            } else {
                value.outcome = crate::adversary::fake_outcome(&value.outcome, &value.spec.spec.candidates);
            }
            let polka = p.polka.clone();
            Some(Message::Proposal(Box::new(build::proposal(env, value, p.round, p.valid_round, env.me, polka))))
        }
        _ => None,
    }
}
