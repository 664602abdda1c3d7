//! Rows for docs/protocol.md L1–L47 and L54–L61.

use super::Expect::*;
use super::*;

const NORMAL: ProposalMode = ProposalMode::Normal;

fn nothing(f: &Fx) -> Script<'_> {
    f.at(0)
}

/// Agent 0 locked B in round 0 and moved on to round 1.
fn locked_b_in_0(f: &Fx) -> Script<'_> {
    f.ready(0).at(20).proposal(0, B, None, &[]).prevotes(0, B, &[1, 2]).at(300).timeout(0, TimerKind::Precommit)
}

/// Agent 1 holds three votes, one per candidate.
fn split(f: &Fx) -> Script<'_> {
    f.at(0).open().own(1, 0).votes(&[(0, 1), (2, 2)], 1)
}

pub(super) fn opening_and_votes_l1_to_l9() -> Vec<Case> {
    vec![
        case(
            "L1–L4",
            "Open: evaluate, vote collection, the deadline, round 0 and its propose timeout",
            0,
            nothing,
            |f| f.at(0).open(),
            &[
                Evaluates,
                Schedules(TimerKind::VoteCollection, 150),
                Schedules(TimerKind::Deadline, 500),
                Schedules(TimerKind::Propose, 200),
                InRound(0),
                InStep(Step::Propose),
                KnowsSpec(true),
            ],
        ),
        case(
            "L1",
            "an Open the client did not sign is refused",
            0,
            nothing,
            |f| {
                let mut spec = f.spec.clone();
                spec.signature = Signature::ZERO;
                f.at(0).from(2, Message::Open(spec))
            },
            &[Rejects(Rejection::NotTheClient), KnowsSpec(false)],
        ),
        case(
            "L5–L6",
            "this agent's own vote is signed, broadcast and held",
            0,
            |f| f.at(0).open(),
            |f| f.at(1).own(0, 0),
            &[BroadcastsOwnVote, VotesHeld(1)],
        ),
        case(
            "L7–L8",
            "a member's signed vote is held",
            0,
            |f| f.at(0).open().own(0, 0),
            |f| f.at(2).votes(&[(2, 0)], 0),
            &[VotesHeld(2), NoRejection, NoEvidence],
        ),
        case(
            "L8",
            "a vote with a forged signature is refused",
            0,
            |f| f.at(0).open().own(0, 0),
            |f| f.at(2).from(2, Message::Vote(SignedVote { vote: f.vote(2, 0), signature: Signature::ZERO })),
            &[Rejects(Rejection::BadSignature), VotesHeld(1)],
        ),
        case(
            "L8",
            "a vote from outside the committee is refused",
            0,
            |f| f.at(0).open().own(0, 0),
            |f| f.at(2).from(4, Message::Vote(f.signed(f.vote(4, 0)))),
            &[Rejects(Rejection::NotInCommittee), VotesHeld(1)],
        ),
        case(
            "L9",
            "a second, different vote of one agent is evidence; the first is kept",
            0,
            |f| f.at(0).open().own(0, 0).votes(&[(2, 0)], 0),
            |f| f.at(3).votes(&[(2, 1)], 0),
            &[Evidence(2), VotesHeld(2)],
        ),
        case(
            "L9",
            "a vote carried by a proposal that differs from the one received directly is evidence",
            0,
            |f| f.at(0).open().own(0, 0).votes(&[(1, 0), (2, 1), (3, 0)], 0),
            |f| f.at(20).proposal(0, A, None, &[]),
            &[Evidence(2)],
        ),
    ]
}

pub(super) fn proposing_l10_to_l21() -> Vec<Case> {
    let fresh = |votes, mode| Proposes { round: 0, valid_round: None, votes, polka: 0, mode };
    vec![
        case(
            "L10–L13",
            "StartRound: the next round, the propose step, a propose timeout that grows with the round",
            0,
            |f| f.ready(0),
            |f| f.at(300).timeout(0, TimerKind::Precommit),
            &[InRound(1), InStep(Step::Propose), Schedules(TimerKind::Propose, 550), NoProposal],
        ),
        case(
            "L12",
            "the proposer of the new round proposes",
            2,
            |f| f.ready(2),
            |f| f.at(300).timeout(0, TimerKind::Precommit),
            &[Proposes { round: 1, valid_round: None, votes: 4, polka: 0, mode: NORMAL }],
        ),
        case(
            "L12",
            "an agent that is not the round's proposer does not propose",
            0,
            |f| f.ready(0),
            |f| f.at(150).timeout(0, TimerKind::VoteCollection),
            &[NoProposal],
        ),
        case(
            "L14–L15",
            "a proposer holding a valid value re-proposes it with its polka certificate",
            2,
            |f| f.ready(2).at(20).proposal(0, A, None, &[]).prevotes(0, A, &[1, 3]),
            |f| f.at(300).timeout(0, TimerKind::Precommit),
            &[Proposes { round: 1, valid_round: Some(0), votes: 4, polka: 3, mode: NORMAL }, Locked(Some((0, A)))],
        ),
        case(
            "L16, L16a",
            "with all n votes the proposer proposes at once, carrying every vote",
            1,
            |f| f.at(0).open().own(1, 0).votes(&[(0, 1), (2, 0)], 1),
            |f| f.at(5).votes(&[(3, 0)], 1),
            &[fresh(4, NORMAL)],
        ),
        case(
            "L16",
            "with q votes, once vote collection is over",
            1,
            |f| f.at(0).open().own(1, 0).votes(&[(0, 1), (2, 0)], 1),
            |f| f.at(150).timeout(0, TimerKind::VoteCollection),
            &[fresh(3, NORMAL)],
        ),
        case(
            "L17",
            "with q votes for one candidate, before vote collection is over",
            1,
            |f| f.at(0).open().own(1, 0).votes(&[(0, 0)], 1),
            |f| f.at(5).votes(&[(2, 0)], 1),
            &[fresh(3, NORMAL)],
        ),
        case(
            "L16b",
            "votes missing and no decision by the threshold: wait",
            1,
            split,
            |f| f.at(150).timeout(0, TimerKind::VoteCollection),
            &[NoProposal],
        ),
        case(
            "L16c",
            "at the deadline the proposer proposes what it holds",
            1,
            |f| f.at(0).open().own(1, 0).votes(&[(0, 1), (2, 2)], 1).at(150).timeout(0, TimerKind::VoteCollection),
            |f| f.at(500).timeout(0, TimerKind::Deadline),
            &[fresh(3, NORMAL)],
        ),
        Case {
            setting: Setting::Fallback,
            ..case(
                "L18–L20",
                "past the deadline with the fallback on and no decision: a fallback proposal",
                1,
                |f| f.at(0).open().own(1, 0).votes(&[(0, 1), (2, 2)], 1).at(150).timeout(0, TimerKind::VoteCollection),
                |f| f.at(500).timeout(0, TimerKind::Deadline),
                &[fresh(3, ProposalMode::Fallback)],
            )
        },
        case(
            "L21",
            "fewer than q votes: wait",
            1,
            |f| f.at(0).open().own(1, 0).votes(&[(0, 0)], 1),
            |f| f.at(150).timeout(0, TimerKind::VoteCollection),
            &[NoProposal],
        ),
    ]
}

pub(super) fn prevoting_l22_to_l25() -> Vec<Case> {
    vec![
        case(
            "L22–L25",
            "a valid proposal, unlocked: prevote it",
            0,
            |f| f.ready(0),
            |f| f.at(20).proposal(0, A, None, &[]),
            &[Prevote(0, A), InStep(Step::Prevote)],
        ),
        case(
            "L23–L24",
            "locked on another value: prevote nil",
            0,
            locked_b_in_0,
            |f| f.at(310).proposal(1, A, None, &[]),
            &[Prevote(1, NIL), Locked(Some((0, B))), InStep(Step::Prevote)],
        ),
        case(
            "L23",
            "locked on the proposed value: prevote it",
            0,
            locked_b_in_0,
            |f| f.at(310).proposal(1, B, None, &[]),
            &[Prevote(1, B)],
        ),
        case(
            "L24",
            "an invalid value (V4): prevote nil",
            0,
            |f| f.ready(0),
            |f| f.at(20).proposal(0, X, None, &[]),
            &[Prevote(0, NIL), InStep(Step::Prevote)],
        ),
        case(
            "L22",
            "only the round's proposer may propose",
            0,
            |f| f.ready(0),
            |f| {
                let mut p = f.proposal(1, A, None, &[]);
                p.round = 0;
                f.at(20).from(2, Message::Proposal(Box::new(p)))
            },
            &[Rejects(Rejection::WrongProposer), NoRoundVote, InStep(Step::Propose)],
        ),
        case(
            "L22",
            "a proposal with a forged signature is refused",
            0,
            |f| f.ready(0),
            |f| {
                let mut p = f.proposal(0, A, None, &[]);
                p.signature = Signature::ZERO;
                f.at(20).from(1, Message::Proposal(Box::new(p)))
            },
            &[Rejects(Rejection::BadSignature), NoRoundVote],
        ),
        case(
            "L22",
            "a second, different proposal of the round is evidence and changes nothing",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]),
            |f| f.at(30).proposal(0, B, None, &[]),
            &[Evidence(1), NoRoundVote],
        ),
        case(
            "L22",
            "a relayed copy of the round's proposal with another polka certificate (not signed) is no evidence",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]),
            |f| {
                let mut p = f.proposal(0, A, None, &[]);
                p.polka.push(f.round_vote(VoteKind::Prevote, 0, 2, A));
                f.at(30).from(3, Message::Proposal(Box::new(p)))
            },
            &[NoEvidence, NoRoundVote],
        ),
        case(
            "L22",
            "past the propose step a proposal gets no second prevote",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose),
            |f| f.at(210).proposal(0, A, None, &[]),
            &[NoRoundVote, InStep(Step::Prevote)],
        ),
    ]
}

pub(super) fn prevoting_with_a_polka_certificate_l26_to_l30() -> Vec<Case> {
    vec![
        case(
            "L26–L28",
            "unlocked, a re-proposal with the polka of an earlier round: prevote it",
            0,
            |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(310).proposal(1, A, Some(0), &[1, 2, 3]),
            &[Prevote(1, A), Tally(VoteKind::Prevote, 0, A, 3)],
        ),
        case(
            "L28",
            "locked on another value in a round up to the valid round: prevote it",
            0,
            |f| locked_b_in_0(f).at(600).timeout(1, TimerKind::Precommit),
            |f| f.at(700).proposal(2, A, Some(1), &[1, 2, 3]),
            &[Prevote(2, A), Locked(Some((0, B)))],
        ),
        case(
            "L28–L29",
            "locked on another value in a round above the valid round: prevote nil",
            0,
            |f| {
                let s = f.ready(0).at(300).timeout(0, TimerKind::Precommit);
                s.at(310).proposal(1, B, None, &[]).prevotes(1, B, &[1, 3]).at(600).timeout(1, TimerKind::Precommit)
            },
            |f| f.at(700).proposal(2, A, Some(0), &[1, 2, 3]),
            &[Prevote(2, NIL), Locked(Some((1, B)))],
        ),
        case(
            "L28",
            "locked on the re-proposed value in a round above its valid round: prevote it",
            0,
            |f| {
                let s = f.ready(0).at(300).timeout(0, TimerKind::Precommit);
                s.at(310).proposal(1, A, None, &[]).prevotes(1, A, &[1, 3]).at(600).timeout(1, TimerKind::Precommit)
            },
            |f| f.at(700).proposal(2, A, Some(0), &[1, 2, 3]),
            &[Prevote(2, A), Locked(Some((1, A)))],
        ),
        case(
            "L26–L27",
            "fewer than q prevotes for the valid round: wait",
            0,
            |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(310).proposal(1, A, Some(0), &[1, 2]),
            &[NoRoundVote, InStep(Step::Propose), Tally(VoteKind::Prevote, 0, A, 2)],
        ),
        case(
            "L27",
            "a valid round that is not below the round: prevote nil",
            0,
            |f| f.ready(0),
            |f| f.at(20).proposal(0, A, Some(0), &[1, 2]),
            &[Prevote(0, NIL)],
        ),
        case(
            "L26",
            "a certificate prevote with a forged signature is refused and not counted",
            0,
            |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
            |f| {
                let mut p = f.proposal(1, A, Some(0), &[1, 2, 3]);
                p.polka[2].signature = Signature::ZERO;
                f.at(310).from(2, Message::Proposal(Box::new(p)))
            },
            &[Rejects(Rejection::BadSignature), NoRoundVote, Tally(VoteKind::Prevote, 0, A, 2)],
        ),
    ]
}

pub(super) fn the_vote_keeper_l31_to_l33() -> Vec<Case> {
    vec![
        case(
            "L31–L32",
            "a member's prevote is kept and counted",
            0,
            |f| f.ready(0),
            |f| f.at(20).prevotes(0, A, &[2]),
            &[Tally(VoteKind::Prevote, 0, A, 1), NoEvidence],
        ),
        case(
            "L32",
            "an equivocation is evidence; both votes are kept, each counted for its own value",
            0,
            |f| f.ready(0).at(20).prevotes(0, A, &[2]),
            |f| f.at(30).prevotes(0, B, &[2]),
            &[Evidence(2), Tally(VoteKind::Prevote, 0, A, 1), Tally(VoteKind::Prevote, 0, B, 1)],
        ),
        case(
            "L32",
            "a third value of one signer is evidence only (the keeper's bound)",
            0,
            |f| f.ready(0).at(20).prevotes(0, A, &[2]).prevotes(0, B, &[2]),
            |f| f.at(30).prevotes(0, X, &[2]),
            &[Evidence(2), Tally(VoteKind::Prevote, 0, X, 0)],
        ),
        case(
            "L33",
            "a copy of a held vote counts once",
            0,
            |f| f.ready(0).at(20).prevotes(0, A, &[2]),
            |f| f.at(30).prevotes(0, A, &[2]),
            &[Tally(VoteKind::Prevote, 0, A, 1), NoEvidence],
        ),
        case(
            "L31",
            "a round vote with a forged signature is refused",
            0,
            |f| f.ready(0),
            |f| {
                let mut v = f.round_vote(VoteKind::Prevote, 0, 2, A);
                v.signature = Signature::ZERO;
                f.at(20).from(2, Message::RoundVote(v))
            },
            &[Rejects(Rejection::BadSignature), Tally(VoteKind::Prevote, 0, A, 0)],
        ),
        case(
            "L31",
            "a round vote from outside the committee is refused",
            0,
            |f| f.ready(0),
            |f| f.at(20).prevotes(0, A, &[4]),
            &[Rejects(Rejection::NotInCommittee), Tally(VoteKind::Prevote, 0, A, 0)],
        ),
    ]
}

pub(super) fn locking_and_precommitting_l34_to_l47() -> Vec<Case> {
    vec![
        case(
            "L34–L35",
            "q prevotes for any values in the prevote step: the prevote timeout",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).prevotes(0, NIL, &[1]),
            |f| f.at(30).prevotes(0, B, &[2]),
            &[Schedules(TimerKind::Prevote, 80), NoRoundVote, InStep(Step::Prevote)],
        ),
        case(
            "L34",
            "fewer than q prevotes: no prevote timeout",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]),
            |f| f.at(30).prevotes(0, NIL, &[1]),
            &[NoSchedule(TimerKind::Prevote)],
        ),
        case(
            "L36–L41",
            "the proposal and q prevotes for it in the prevote step: lock, precommit, valid value",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).prevotes(0, A, &[1]),
            |f| f.at(30).prevotes(0, A, &[2]),
            &[Precommit(0, A), InStep(Step::Precommit), Locked(Some((0, A))), Valid(Some((0, A)))],
        ),
        case(
            "L36",
            "q prevotes for an invalid value: no lock",
            0,
            |f| f.ready(0).at(20).proposal(0, X, None, &[]).prevotes(0, X, &[1]),
            |f| f.at(30).prevotes(0, X, &[2]),
            &[NoRoundVote, Locked(None), Valid(None)],
        ),
        case(
            "L41",
            "the polka after precommitting nil: the valid value only",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).at(100).timeout(0, TimerKind::Prevote),
            |f| f.at(110).prevotes(0, A, &[1, 2]),
            &[NoRoundVote, Locked(None), Valid(Some((0, A))), InStep(Step::Precommit)],
        ),
        case(
            "L42–L43",
            "a polka of an earlier round learned late: the valid value, locks unchanged",
            0,
            |f| {
                let s = f.ready(0).at(20).proposal(0, A, None, &[]).at(300).timeout(0, TimerKind::Precommit);
                s.at(600).timeout(1, TimerKind::Precommit)
            },
            |f| f.at(610).prevotes(0, A, &[1, 2]),
            &[Valid(Some((0, A))), Locked(None), InRound(2), NoRoundVote],
        ),
        case(
            "L42",
            "a polka older than the valid round changes nothing",
            0,
            |f| {
                let s = f.ready(0).at(300).timeout(0, TimerKind::Precommit);
                let s = s.at(310).proposal(1, B, None, &[]).prevotes(1, B, &[1, 3]);
                s.at(600).timeout(1, TimerKind::Precommit).at(610).proposal(0, A, None, &[])
            },
            |f| f.at(620).prevotes(0, A, &[1, 2, 3]),
            &[Valid(Some((1, B))), Locked(Some((1, B)))],
        ),
        case(
            "L44–L45",
            "q nil prevotes in the prevote step: precommit nil",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose).prevotes(0, NIL, &[1]),
            |f| f.at(210).prevotes(0, NIL, &[2]),
            &[Precommit(0, NIL), InStep(Step::Precommit), Locked(None)],
        ),
        case(
            "L46–L47",
            "q precommits for any values: the precommit timeout",
            0,
            |f| f.ready(0),
            |f| f.at(30).precommits(0, NIL, &[1, 2]).precommits(0, B, &[3]),
            &[Schedules(TimerKind::Precommit, 80), NoDecision],
        ),
    ]
}

pub(super) fn rounds_and_timeouts_l54_to_l61() -> Vec<Case> {
    vec![
        case(
            "L54–L55",
            "f + 1 agents in a later round: start it (here as its proposer, L12)",
            0,
            |f| f.ready(0),
            |f| f.at(30).prevotes(3, NIL, &[2]).precommits(3, NIL, &[3]),
            &[
                InRound(3),
                Prevote(3, A),
                Schedules(TimerKind::Propose, 380),
                Proposes { round: 3, valid_round: None, votes: 4, polka: 0, mode: NORMAL },
            ],
        ),
        case(
            "L54",
            "one agent in a later round is not enough",
            0,
            |f| f.ready(0),
            |f| f.at(30).prevotes(3, NIL, &[2]),
            &[InRound(0)],
        ),
        case(
            "L56–L57",
            "the propose timeout in the propose step: prevote nil",
            0,
            |f| f.ready(0),
            |f| f.at(200).timeout(0, TimerKind::Propose),
            &[Prevote(0, NIL), InStep(Step::Prevote)],
        ),
        case(
            "L56",
            "a propose timeout of an earlier round changes nothing",
            0,
            |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(310).timeout(0, TimerKind::Propose),
            &[NoRoundVote, InRound(1), InStep(Step::Propose)],
        ),
        case(
            "L56",
            "a propose timeout after prevoting changes nothing",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]),
            |f| f.at(200).timeout(0, TimerKind::Propose),
            &[NoRoundVote, InStep(Step::Prevote)],
        ),
        case(
            "L58–L59",
            "the prevote timeout in the prevote step: precommit nil",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose),
            |f| f.at(250).timeout(0, TimerKind::Prevote),
            &[Precommit(0, NIL), InStep(Step::Precommit)],
        ),
        case(
            "L58",
            "a prevote timeout in the propose step changes nothing",
            0,
            |f| f.ready(0),
            |f| f.at(100).timeout(0, TimerKind::Prevote),
            &[NoRoundVote, InStep(Step::Propose)],
        ),
        case(
            "L60–L61",
            "the precommit timeout of the current round: the next round",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose),
            |f| f.at(300).timeout(0, TimerKind::Precommit),
            &[InRound(1), InStep(Step::Propose)],
        ),
        case(
            "L60",
            "a precommit timeout of an earlier round changes nothing",
            0,
            |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(400).timeout(0, TimerKind::Precommit),
            &[InRound(1)],
        ),
    ]
}
