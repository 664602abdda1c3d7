//! The wire encoding: versioned, length-prefixed frames with bounded sizes, and the canonical
//! bytes that signatures and value ids cover.
//!
//! A frame is `"BF" | version (1 byte) | body length (u32, big-endian) | body`, where the body
//! is the [postcard] encoding of a [`Message`]. Decoding never panics: a short, oversized,
//! foreign, future-version, truncated, trailing-garbage or out-of-bounds frame is a typed
//! [`WireError`] that the caller counts.

use crate::canonical::tagged_bytes;
pub use crate::canonical::{canonical_bytes, canonical_digest};
use crate::protocol::messages::{Message, ProposalValue, Round, SessionSpec, ValueId, VoteKind};
use crate::types::{AgentVote, SessionId};

/// Frame magic.
pub const MAGIC: [u8; 2] = *b"BF";
/// Encoding version.
pub const VERSION: u8 = 1;
/// Header bytes before the body.
pub const HEADER_BYTES: usize = 7;
/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most votes a proposal may carry.
pub const MAX_VOTES: usize = 1_024;
/// Most candidates a session may have.
pub const MAX_CANDIDATES: usize = 256;
/// Longest text field (query, reasoning, reasons, metadata keys and values), in bytes.
pub const MAX_TEXT_BYTES: usize = 4_096;
/// Most metadata entries or per-candidate scores in a vote.
pub const MAX_VOTE_ENTRIES: usize = 256;
/// Most precommits a commit certificate may carry.
pub const MAX_PRECOMMITS: usize = 1_024;

/// Why a frame was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a header.
    #[error("frame of {0} bytes is shorter than its header")]
    TooShort(usize),
    /// Not our magic.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this build does not speak.
    #[error("unsupported encoding version {0}")]
    UnsupportedVersion(u8),
    /// The declared body length is above the limit.
    #[error("body of {0} bytes exceeds the {MAX_BODY_BYTES}-byte limit")]
    TooLarge(usize),
    /// The declared body length differs from the bytes present.
    #[error("declared body length {declared} but {actual} bytes follow the header")]
    LengthMismatch {
        /// From the header.
        declared: usize,
        /// Present.
        actual: usize,
    },
    /// The body is not a valid message.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A field exceeds its bound.
    #[error("{field} has {len} entries or bytes, above the bound {max}")]
    OutOfBounds {
        /// Which field.
        field: &'static str,
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
}

/// What a voter signs: a domain tag and the vote (which names its session).
pub fn vote_signing_bytes(vote: &AgentVote) -> Vec<u8> {
    tagged_bytes(b"bftsim/vote/v1", vote)
}

/// What the client signs when it opens a session.
pub fn spec_signing_bytes(spec: &SessionSpec) -> Vec<u8> {
    tagged_bytes(b"bftsim/open/v1", spec)
}

/// What a proposer signs: session, round, valid round and the value id.
pub fn proposal_signing_bytes(value: &ProposalValue, round: Round, valid_round: Option<Round>) -> Vec<u8> {
    proposal_id_signing_bytes(value.session, round, valid_round, ValueId::of(value))
}

/// [`proposal_signing_bytes`] of a value whose id `id` the caller already computed (a value id
/// hashes the whole vote set): the same bytes.
pub fn proposal_id_signing_bytes(session: SessionId, round: Round, valid_round: Option<Round>, id: ValueId) -> Vec<u8> {
    tagged_bytes(b"bftsim/proposal/v1", &(session, round, valid_round, id))
}

/// What a prevote or precommit signs: kind, session, round and value.
pub fn round_vote_signing_bytes(kind: VoteKind, session: SessionId, round: Round, value: Option<ValueId>) -> Vec<u8> {
    tagged_bytes(b"bftsim/round-vote/v1", &(kind, session, round, value))
}

/// Encodes one message as a frame (header and body serialised into one buffer).
pub fn encode(message: &Message) -> Vec<u8> {
    let mut frame = tagged_bytes(&[MAGIC[0], MAGIC[1], VERSION, 0, 0, 0, 0], message);
    let body = u32::try_from(frame.len().saturating_sub(HEADER_BYTES)).unwrap_or(u32::MAX);
    if let Some(length) = frame.get_mut(3..HEADER_BYTES) {
        length.copy_from_slice(&body.to_be_bytes());
    }
    frame
}

/// Decodes one frame, checking the header, the length and every bound.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    if frame.len() < HEADER_BYTES {
        return Err(WireError::TooShort(frame.len()));
    }
    let magic = [frame[0], frame[1]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if frame[2] != VERSION {
        return Err(WireError::UnsupportedVersion(frame[2]));
    }
    let declared = u32::from_be_bytes([frame[3], frame[4], frame[5], frame[6]]) as usize;
    if declared > MAX_BODY_BYTES {
        return Err(WireError::TooLarge(declared));
    }
    let body = &frame[HEADER_BYTES..];
    if body.len() != declared {
        return Err(WireError::LengthMismatch { declared, actual: body.len() });
    }
    let (message, rest): (Message, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    check_bounds(&message)?;
    Ok(message)
}

/// The session a frame belongs to, read from the header and the first fields of the body only
/// (no allocation, no full decode): `None` for a frame that is malformed or belongs to no session
/// (`Sync`). Agrees with `decode(frame).map(|m| m.session())` on every well-formed frame but
/// `Sync` (a property test checks it); it does not check the rest of the body, so a malformed
/// frame may still yield a session.
pub fn peek_session(frame: &[u8]) -> Option<SessionId> {
    if frame.len() < HEADER_BYTES || frame[..2] != MAGIC || frame[2] != VERSION {
        return None;
    }
    let mut body = Cursor(&frame[HEADER_BYTES..]);
    // The variant index of `Message`, then each variant's fields in declaration order
    // (postcard: unsigned integers and enum tags are varints; `Option` is a 0/1 byte).
    match body.varint()? {
        // Open(SignedSpec { spec: SessionSpec { session, .. }, .. })
        0 => body.varint().map(SessionId),
        // Vote(SignedVote { vote: AgentVote { agent, specialization, session, .. }, .. })
        1 => {
            body.varint()?;
            body.varint()?;
            body.varint().map(SessionId)
        }
        // Proposal(Proposal { round, valid_round, value: ProposalValue { session, .. }, .. }),
        // and Commit(Commit { proposal: Proposal { .. }, .. }) which starts the same way.
        2 | 4 => {
            body.varint()?;
            match body.byte()? {
                0 => {}
                1 => {
                    body.varint()?;
                }
                _ => return None,
            }
            body.varint().map(SessionId)
        }
        // RoundVote(RoundVote { kind, session, .. })
        3 => {
            body.varint()?;
            body.varint().map(SessionId)
        }
        _ => None,
    }
}

/// The session of a `Commit` frame, read like [`peek_session`] (header and first fields only;
/// `None` for any other message). For a party that only counts certificates, such as the
/// simulator's client, without decoding them.
pub fn peek_commit(frame: &[u8]) -> Option<SessionId> {
    const COMMIT: u8 = 4;
    (frame.get(HEADER_BYTES) == Some(&COMMIT)).then(|| peek_session(frame)).flatten()
}

/// Reads postcard's primitives from the front of a body.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

fn bound(field: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::OutOfBounds { field, len, max });
    }
    Ok(())
}

fn check_vote(vote: &AgentVote) -> Result<(), WireError> {
    bound("vote.reasoning", vote.reasoning.len(), MAX_TEXT_BYTES)?;
    bound("vote.scores", vote.scores.len(), MAX_VOTE_ENTRIES)?;
    bound("vote.metadata", vote.metadata.len(), MAX_VOTE_ENTRIES)?;
    for (k, v) in &vote.metadata {
        bound("vote.metadata entry", k.len() + v.len(), MAX_TEXT_BYTES)?;
    }
    match &vote.value {
        crate::types::VoteValue::Abstain { reason } => bound("vote.reason", reason.len(), MAX_TEXT_BYTES),
        crate::types::VoteValue::Reject { reason: crate::types::RejectionReason::Other(reason) } => {
            bound("vote.reason", reason.len(), MAX_TEXT_BYTES)
        }
        _ => Ok(()),
    }
}

fn check_spec(spec: &SessionSpec) -> Result<(), WireError> {
    bound("open.query", spec.query.len(), MAX_TEXT_BYTES)?;
    bound("open.candidates", spec.candidates.len(), MAX_CANDIDATES)
}

fn check_value(value: &ProposalValue) -> Result<(), WireError> {
    check_spec(&value.spec.spec)?;
    bound("proposal.votes", value.votes.len(), MAX_VOTES)?;
    value.votes.iter().try_for_each(|v| check_vote(&v.vote))
}

/// Checks every size bound of a decoded message.
pub fn check_bounds(message: &Message) -> Result<(), WireError> {
    match message {
        Message::Open(open) => check_spec(&open.spec),
        Message::Vote(v) => check_vote(&v.vote),
        Message::Proposal(p) => {
            bound("proposal.polka", p.polka.len(), MAX_PRECOMMITS)?;
            check_value(&p.value)
        }
        Message::RoundVote(_) | Message::Sync { .. } => Ok(()),
        Message::Commit(c) => {
            bound("commit.precommits", c.precommits.len(), MAX_PRECOMMITS)?;
            bound("commit.proposal.polka", c.proposal.polka.len(), MAX_PRECOMMITS)?;
            check_value(&c.proposal.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::protocol::messages::{SignedSpec, SignedVote};
    use crate::sign::Signature;
    use crate::types::{AgentId, AgentSpecialization, CandidateId};
    use crate::Ppm;

    fn vote_message() -> Message {
        let vote = AgentVote::accept(
            AgentId(3),
            AgentSpecialization::Reranker,
            SessionId(9),
            CandidateId(1),
            Ppm::saturating(800_000),
            Ppm::saturating(900_000),
        );
        Message::Vote(SignedVote { vote, signature: Signature([7; 64]) })
    }

    #[test]
    fn frames_round_trip() {
        let open = Message::Open(SignedSpec {
            spec: SessionSpec {
                session: SessionId(1),
                query: "what is BFT?".into(),
                candidates: vec![CandidateId(0), CandidateId(1)],
                opened_ms: 5,
            },
            signature: Signature([1; 64]),
        });
        for m in [open, vote_message()] {
            let frame = encode(&m);
            assert_eq!(frame[..HEADER_BYTES - 4], [b'B', b'F', VERSION]);
            assert_eq!(frame[3..HEADER_BYTES], (frame.len() as u32 - HEADER_BYTES as u32).to_be_bytes());
            assert_eq!(frame[HEADER_BYTES..], canonical_bytes(&m));
            assert_eq!(decode(&frame), Ok(m));
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let good = encode(&vote_message());
        assert_eq!(decode(&good[..3]), Err(WireError::TooShort(3)));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(WireError::BadMagic([b'X', b'F'])));
        let mut bad = good.clone();
        bad[2] = 9;
        assert_eq!(decode(&bad), Err(WireError::UnsupportedVersion(9)));
        let mut bad = good.clone();
        bad[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&bad), Err(WireError::TooLarge(_))));
        assert!(matches!(decode(&good[..good.len() - 1]), Err(WireError::LengthMismatch { .. })));
        let mut bad = good.clone();
        bad[HEADER_BYTES] = 200; // no such message variant
        assert!(matches!(decode(&bad), Err(WireError::Malformed(_))));
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let open = Message::Open(SignedSpec {
            spec: SessionSpec {
                session: SessionId(1),
                query: "x".repeat(MAX_TEXT_BYTES + 1),
                candidates: vec![],
                opened_ms: 0,
            },
            signature: Signature::ZERO,
        });
        assert!(matches!(decode(&encode(&open)), Err(WireError::OutOfBounds { field: "open.query", .. })));
    }

    #[test]
    fn signing_bytes_bind_session_and_round() {
        let a = round_vote_signing_bytes(VoteKind::Prevote, SessionId(1), 0, None);
        assert_ne!(a, round_vote_signing_bytes(VoteKind::Prevote, SessionId(2), 0, None));
        assert_ne!(a, round_vote_signing_bytes(VoteKind::Prevote, SessionId(1), 1, None));
        assert_ne!(a, round_vote_signing_bytes(VoteKind::Precommit, SessionId(1), 0, None));
    }

    /// The streamed digest and the buffer-free paths give the bytes and hashes of the plain
    /// serialisation: values from empty to several hash chunks, with text fields longer than a
    /// chunk (copied past the buffer) and short ones (buffered).
    #[test]
    fn streamed_digests_and_id_signing_bytes_equal_the_plain_encoding() {
        for (n, reasoning) in [(0, 0), (1, 3), (2, 300), (5, 17), (9, 255), (13, 256), (40, 1_000)] {
            let Some(Message::Proposal(p)) = messages(7, 1, 2, Some(1)).into_iter().nth(2) else {
                panic!("the third message is a proposal");
            };
            let mut value = p.value;
            let template = value.votes[0].clone();
            value.votes = (0..n)
                .map(|i| {
                    let mut v = template.clone();
                    v.vote.agent = AgentId(i);
                    v.vote.reasoning = "r".repeat(reasoning + i as usize);
                    v
                })
                .collect();
            let mut plain = b"bftsim/value/v1".to_vec();
            plain.extend(postcard::to_allocvec(&value).unwrap_or_default());
            let expected: [u8; 32] = Sha256::digest(&plain).into();
            assert_eq!(ValueId::of(&value).0, expected, "{n} votes, reasoning {reasoning}");
            assert_eq!(canonical_bytes(&value), postcard::to_allocvec(&value).unwrap_or_default());
            assert_eq!(
                proposal_signing_bytes(&value, 3, Some(2)),
                proposal_id_signing_bytes(value.session, 3, Some(2), ValueId::of(&value))
            );
        }
    }

    /// One message of each variant, with the numbers that precede the session in the encoding
    /// (agent, round, valid round) and the session itself taken from the arguments.
    fn messages(session: u64, agent: u32, round: u32, valid_round: Option<u32>) -> Vec<Message> {
        use crate::protocol::messages::{AgreedOutcome, Commit, Proposal, ProposalMode, RoundVote};
        let session = SessionId(session);
        let spec = SignedSpec {
            spec: SessionSpec { session, query: "q".into(), candidates: vec![CandidateId(0)], opened_ms: 3 },
            signature: Signature([2; 64]),
        };
        let mut vote = AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::Monitor,
            session,
            CandidateId(0),
            Ppm::saturating(1),
            Ppm::saturating(2),
        );
        vote.timestamp_ms = u64::from(round);
        let signed = SignedVote { vote, signature: Signature([3; 64]) };
        let round_vote = RoundVote {
            kind: if round % 2 == 0 { VoteKind::Prevote } else { VoteKind::Precommit },
            session,
            round,
            value: valid_round.map(|_| ValueId([4; 32])),
            agent: AgentId(agent),
            signature: Signature([5; 64]),
        };
        let proposal = Proposal {
            round,
            valid_round,
            value: ProposalValue {
                session,
                spec: spec.clone(),
                mode: ProposalMode::Normal,
                votes: vec![signed.clone()],
                outcome: AgreedOutcome::NoDecision { achieved: Ppm::saturating(3) },
            },
            proposer: AgentId(agent),
            signature: Signature([6; 64]),
            polka: vec![round_vote.clone()],
        };
        vec![
            Message::Open(spec),
            Message::Vote(signed),
            Message::Proposal(Box::new(proposal.clone())),
            Message::RoundVote(round_vote.clone()),
            Message::Commit(Box::new(Commit { proposal, precommits: vec![round_vote] })),
            Message::Sync { next: session },
        ]
    }

    proptest! {
        #[test]
        fn peek_session_agrees_with_a_full_decode(
            session in any::<u64>(),
            agent in any::<u32>(),
            round in any::<u32>(),
            valid_round in any::<Option<u32>>(),
        ) {
            for m in messages(session, agent, round, valid_round) {
                let frame = encode(&m);
                let decoded = decode(&frame);
                prop_assert_eq!(decoded.as_ref(), Ok(&m));
                let expected = match &m {
                    Message::Sync { .. } => None,
                    other => Some(other.session()),
                };
                prop_assert_eq!(peek_session(&frame), expected, "{}", m.kind());
                let commit = matches!(m, Message::Commit(_)).then(|| m.session());
                prop_assert_eq!(peek_commit(&frame), commit, "{}", m.kind());
            }
        }

        #[test]
        fn peeking_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = peek_session(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.push(VERSION);
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend_from_slice(&bytes);
            let _ = peek_session(&framed);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.push(VERSION);
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }
    }
}
