//! The signing format of docs/protocol.md ("Signing format"), computed by the oracle itself:
//! a domain tag followed by the postcard encoding of what is signed. The agents compute these
//! bytes in `consensus_core::wire`; the oracle never calls those functions, so signing bytes
//! that no longer cover what they should (a constant, a field left out) cannot blind the
//! invariants that verify signatures (`external-validity`, `honest-proposal-valid`): honest
//! agents' signatures then fail here, and a signature reused on other content is seen.

use consensus_core::protocol::messages::{ProposalValue, SessionSpec};
use consensus_core::protocol::{Round, ValueId, VoteKind};
use consensus_core::types::AgentVote;
use consensus_core::SessionId;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A session vote: `bftsim/vote/v1`, then the vote (which names its session).
pub const VOTE_TAG: &[u8] = b"bftsim/vote/v1";
/// The client's session specification: `bftsim/open/v1`, then the spec.
pub const SPEC_TAG: &[u8] = b"bftsim/open/v1";
/// A proposal: `bftsim/proposal/v1`, then (session, round, valid round, value id).
pub const PROPOSAL_TAG: &[u8] = b"bftsim/proposal/v1";
/// A proposal value, hashed to its id: `bftsim/value/v1`, then the value.
pub const VALUE_TAG: &[u8] = b"bftsim/value/v1";
/// A prevote or precommit: `bftsim/round-vote/v1`, then (kind, session, round, value).
pub const ROUND_VOTE_TAG: &[u8] = b"bftsim/round-vote/v1";

/// `tag` followed by the postcard encoding of `value` (empty on an encoding error, which plain
/// data never has: no signature verifies over it then).
fn tagged<T: Serialize>(tag: &[u8], value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(body) => [tag, body.as_slice()].concat(),
        Err(_) => Vec::new(),
    }
}

/// What a voter signs.
pub fn vote(vote: &AgentVote) -> Vec<u8> {
    tagged(VOTE_TAG, vote)
}

/// What the client signs when it opens a session.
pub fn spec(spec: &SessionSpec) -> Vec<u8> {
    tagged(SPEC_TAG, spec)
}

/// What a proposer signs.
pub fn proposal(session: SessionId, round: Round, valid_round: Option<Round>, id: ValueId) -> Vec<u8> {
    tagged(PROPOSAL_TAG, &(session, round, valid_round, id))
}

/// What a prevote or precommit signs.
pub fn round_vote(kind: VoteKind, session: SessionId, round: Round, value: Option<ValueId>) -> Vec<u8> {
    tagged(ROUND_VOTE_TAG, &(kind, session, round, value))
}

/// `id(v)`: SHA-256 of the value's tagged encoding, computed here rather than by
/// `ValueId::of`, so a mutant of the agents' value ids cannot blind the oracle either.
pub fn value_id(value: &ProposalValue) -> ValueId {
    ValueId(Sha256::digest(tagged(VALUE_TAG, value)).into())
}
