//! Rows for docs/protocol.md L48–L53: deciding from precommits and from commit certificates.

use super::Expect::*;
use super::*;

fn nothing(f: &Fx) -> Script<'_> {
    f.at(0)
}

/// A commit certificate for A with these precommits, from agent 2.
fn cert(f: &Fx, precommits: Vec<RoundVote>) -> Script<'_> {
    f.at(30).from(2, f.commit(A, precommits))
}

pub(super) fn deciding_l48_to_l51() -> Vec<Case> {
    vec![
        case(
            "L48–L51",
            "the proposal and q precommits for it: decide, tell the client",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).precommits(0, A, &[1, 2]),
            |f| f.at(30).precommits(0, A, &[3]),
            &[Decides(0, A), SendsCommit(CLIENT)],
        ),
        case(
            "L48",
            "in an earlier round than this agent's",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(310).precommits(0, A, &[1, 2, 3]),
            &[Decides(0, A), InRound(1)],
        ),
        case(
            "L49",
            "q precommits for an invalid value: no decision",
            0,
            |f| f.ready(0).at(20).proposal(0, X, None, &[]),
            |f| f.at(30).precommits(0, X, &[1, 2, 3]),
            &[NoDecision],
        ),
        case(
            "L48",
            "q precommits without the proposal: no decision",
            0,
            |f| f.ready(0),
            |f| f.at(30).precommits(0, A, &[1, 2, 3]),
            &[NoDecision],
        ),
    ]
}

pub(super) fn commit_certificates_l52_to_l53() -> Vec<Case> {
    vec![
        case(
            "L52–L53",
            "a valid commit certificate: decide",
            0,
            |f| f.ready(0),
            |f| cert(f, f.precommit_set(0, A, &[1, 2, 3])),
            &[Decides(0, A), NoRejection],
        ),
        case(
            "L52–L53",
            "an agent that missed Open learns the session from a certificate",
            0,
            nothing,
            |f| cert(f, f.precommit_set(0, A, &[1, 2, 3])),
            &[Evaluates, KnowsSpec(true), Decides(0, A)],
        ),
    ]
}

/// L53: each condition a certificate can fail, alone.
pub(super) fn invalid_commit_certificates_l53() -> Vec<Case> {
    vec![
        case(
            "L53",
            "too few precommits",
            0,
            |f| f.ready(0),
            |f| cert(f, f.precommit_set(0, A, &[1, 2])),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "a signer twice",
            0,
            |f| f.ready(0),
            |f| cert(f, f.precommit_set(0, A, &[1, 1, 2])),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "precommits of two rounds",
            0,
            |f| f.ready(0),
            |f| cert(f, [f.precommit_set(0, A, &[1, 2]), f.precommit_set(1, A, &[3])].concat()),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "precommits for another value",
            0,
            |f| f.ready(0),
            |f| cert(f, f.precommit_set(0, B, &[1, 2, 3])),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "prevotes instead of precommits",
            0,
            |f| f.ready(0),
            |f| cert(f, [1, 2, 3].iter().map(|a| f.round_vote(VoteKind::Prevote, 0, *a, A)).collect()),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "a signer outside the committee",
            0,
            |f| f.ready(0),
            |f| cert(f, f.precommit_set(0, A, &[1, 2, 4])),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "a forged precommit",
            0,
            |f| f.ready(0),
            |f| {
                let mut set = f.precommit_set(0, A, &[1, 2, 3]);
                set[1].signature = Signature::ZERO;
                cert(f, set)
            },
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "a precommit of another session",
            0,
            |f| f.ready(0),
            |f| {
                let mut set = f.precommit_set(0, A, &[1, 2, 3]);
                let other = SessionId(2);
                let bytes = wire::round_vote_signing_bytes(VoteKind::Precommit, other, 0, f.id(A));
                set[2].session = other;
                set[2].signature = f.keys.agents[3].sign(&bytes);
                cert(f, set)
            },
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L53",
            "a certificate for an invalid value",
            0,
            |f| f.ready(0),
            |f| f.at(30).from(2, f.commit(X, f.precommit_set(0, X, &[1, 2, 3]))),
            &[Rejects(Rejection::InvalidCommit), NoDecision],
        ),
        case(
            "L52",
            "after deciding, a certificate changes nothing",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).precommits(0, A, &[1, 2, 3]),
            |f| cert(f, f.precommit_set(0, A, &[1, 2, 3])),
            &[NoDecision, NoRejection],
        ),
    ]
}
