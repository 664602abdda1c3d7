//! `malformed`: frames that do not decode, sent as raw bytes ([`Output::SendRaw`]). Each starts
//! from the encoding of a message of a kind it holds (or a `Sync`) and breaks one thing: the
//! body truncated or extended, the length field wrong, an unknown variant tag, a foreign magic
//! or version, a byte of the body changed, the header alone, nothing at all. Receivers must
//! count each as `Rejection::Malformed` (or, when a changed byte still decodes, reject what it
//! decodes to) and go on.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::actions::{recipients, To};
use super::memory::Memory;
use super::Env;
use crate::protocol::{Message, Output};
use crate::types::SessionId;
use crate::wire::{self, HEADER_BYTES};

/// The message whose encoding is broken: one of each kind it holds, or a `Sync`.
fn base(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory) -> Message {
    let view = memory.view(env.session);
    let mut candidates: Vec<Message> = vec![Message::Sync { next: SessionId(env.applied) }];
    if let Some(v) = view {
        candidates.extend(v.spec.clone().map(Message::Open));
        candidates.extend(v.votes.back().cloned().map(Message::Vote));
        candidates.extend(v.proposals.back().map(|(p, _)| Message::Proposal(Box::new(p.clone()))));
        candidates.extend(v.round_votes.back().cloned().map(Message::RoundVote));
        candidates.extend(v.commits.back().cloned().map(|c| Message::Commit(Box::new(c))));
    }
    let i = super::index(rng, candidates.len());
    candidates.swap_remove(i)
}

/// `bytes` broken in one way.
pub(super) fn corrupt(rng: &mut ChaCha8Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len().saturating_sub(HEADER_BYTES);
    match rng.gen_range(0..9) {
        0 => {
            // Truncated: the length field now disagrees with the bytes.
            let keep = rng.gen_range(0..bytes.len().max(1));
            bytes.truncate(keep);
        }
        1 => {
            // Extended: trailing bytes after the body, the length field unchanged.
            let extra = rng.gen_range(1..=16);
            bytes.extend((0..extra).map(|_| rng.gen::<u8>()));
        }
        2 => {
            // Extended with the length field updated: trailing garbage inside the body.
            bytes.extend((0..rng.gen_range(1..=16)).map(|_| rng.gen::<u8>()));
            set_length(&mut bytes, body.saturating_add(1));
        }
        3 => {
            // A wrong length field (shorter, longer, or above the limit).
            let declared = match rng.gen_range(0..3) {
                0 => body.saturating_sub(rng.gen_range(1..=8)),
                1 => body.saturating_add(rng.gen_range(1..=8)),
                _ => u32::MAX as usize,
            };
            set_length(&mut bytes, declared);
        }
        4 => {
            // An unknown variant of `Message` (six exist).
            if let Some(tag) = bytes.get_mut(HEADER_BYTES) {
                *tag = rng.gen_range(6..=127);
            }
        }
        5 => {
            if let Some(b) = bytes.get_mut(rng.gen_range(0..2)) {
                *b ^= 0x20; // foreign magic
            }
        }
        6 => {
            if let Some(version) = bytes.get_mut(2) {
                *version = version.wrapping_add(rng.gen_range(1..=255));
            }
        }
        7 if body > 0 => {
            // One byte of the body changed: a broken field, or (rarely) another message whose
            // signature then fails.
            let at = HEADER_BYTES + rng.gen_range(0..body);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= rng.gen_range(1..=255);
            }
        }
        _ => {
            let keep = if rng.gen_bool(0.5) { HEADER_BYTES } else { 0 };
            bytes.truncate(keep);
        }
    }
    bytes
}

fn set_length(bytes: &mut [u8], declared: usize) {
    let declared = u32::try_from(declared).unwrap_or(u32::MAX).to_be_bytes();
    if let Some(field) = bytes.get_mut(3..HEADER_BYTES) {
        field.copy_from_slice(&declared);
    }
}

/// One malformed frame to some agents.
pub(super) fn send(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory, out: &mut Vec<Output>) {
    let message = base(rng, env, memory);
    let bytes = corrupt(rng, wire::encode(&message));
    let to = match recipients(rng, env, env.session, env.round) {
        To::All => env.peers.to_vec(),
        To::Only(list) => list,
    };
    let to = if rng.gen_range(0..10) == 0 { vec![env.client] } else { to };
    for a in to {
        out.push(Output::SendRaw { to: a, bytes: bytes.clone() });
    }
}
