//! The `flood` family: once per run, more inputs for one session than an honest agent buffers.
//!
//! An agent buffers the inputs of a session whose registry epoch it does not hold yet (a session
//! ahead of its pipeline) up to `MAX_BUFFERED_PER_SESSION` per session and refuses the rest
//! (`reject-buffer-full`, agent.rs). Every other family is capped at a few actions per input and
//! per retransmit interval, so only a burst reaches that bound: [`FLOOD`] copies of one of its
//! own prevotes (nil, round 0) for a session just past the pipeline, to one peer. Copies, not
//! fresh signatures: a buffer counts inputs, whatever they are, and copies cost no signing. The
//! family is off by default (not in [`super::Family::ALL`]): scenarios name it, and `explore`
//! switches it on in few runs (`full_power.flood` of the envelope).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{build, pick, Env};
use crate::protocol::{Message, Output, VoteKind, MAX_BUFFERED_PER_SESSION};
use crate::types::SessionId;

/// Copies one flood sends: past the buffer bound, with some left over for inputs the receiver
/// buffered for that session already.
pub const FLOOD: usize = MAX_BUFFERED_PER_SESSION + 64;

/// One flood, to one peer, of a session 0 to 3 past the first whose epoch nobody holds yet
/// (the agent's own applied sessions plus the pipeline).
pub(super) fn send(rng: &mut ChaCha8Rng, env: &Env<'_>, out: &mut Vec<Output>) {
    let Some(to) = pick(rng, env.peers).copied() else { return };
    let ahead = env.applied.saturating_add(env.pipeline).saturating_add(rng.gen_range(0..4));
    let vote = build::round_vote(env, VoteKind::Prevote, SessionId(ahead), 0, None, env.me);
    let message = Message::RoundVote(vote);
    out.extend((0..FLOOD).map(|_| Output::Send { to, message: message.clone() }));
}
