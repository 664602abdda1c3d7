//! Protocol coverage (docs/coverage.md): rows for the points the other tables do not reach
//! (the engine's V10–V13 classes, rejections, the abstract states of own round votes), and the
//! test that every point is reached by some row.

use super::Expect::*;
use super::*;
use crate::config::DetectorKind;
use crate::protocol::session::validity::outcome_of;
use crate::protocol::session::Ctx;

/// Agent 0 locked B in round 0 and moved on to round 1.
fn locked_b_in_0(f: &Fx) -> Script<'_> {
    f.ready(0).at(20).proposal(0, B, None, &[]).prevotes(0, B, &[1, 2]).at(300).timeout(0, TimerKind::Precommit)
}

/// Agent 0 precommitted nil in round 0, then saw A's polka (valid, not locked), and moved on to
/// round 1.
fn valid_a_in_0(f: &Fx) -> Script<'_> {
    let s = f.ready(0).at(20).proposal(0, A, None, &[]).at(100).timeout(0, TimerKind::Prevote);
    s.at(110).prevotes(0, A, &[1, 2]).at(300).timeout(0, TimerKind::Precommit)
}

/// Round 1's proposal of A.
fn propose(f: &Fx) -> Script<'_> {
    f.at(310).proposal(1, A, None, &[])
}

/// A round vote of a session far ahead (its epoch is not ready).
fn ahead(f: &Fx, session: u64) -> Message {
    let mut v = f.round_vote(VoteKind::Prevote, 0, 2, NIL);
    v.session = SessionId(session);
    Message::RoundVote(v)
}

/// The engine's classes at n = 4 (V10–V13) and the checks and rejections no other table needs.
pub(super) fn checks_and_rejections() -> Vec<Case> {
    let engine = |name: Val, points: &'static [Expect]| {
        case("V10–V13", name, 0, |f| f.at(0).open().own(0, 0), move |f| f.at(20).proposal(0, name, None, &[]), points)
    };
    vec![
        engine("tie", &[Prevote(0, "tie"), Covers(Point::V11Pass), Covers(Point::V10Pass)]),
        engine("tie-of-f", &[Prevote(0, "tie-of-f"), Covers(Point::V11Fail)]),
        engine("dissent", &[Prevote(0, "dissent"), Covers(Point::V12Fail), Covers(Point::V10Pass)]),
        engine("flagged", &[Prevote(0, "flagged"), Covers(Point::V13Pass)]),
        engine("flagged-few", &[Prevote(0, "flagged-few"), Covers(Point::V13Fail)]),
        Case {
            setting: Setting::Fallback,
            ..case(
                "V6",
                "a fallback value claiming another outcome",
                0,
                |f| f.ready(0),
                |f| f.at(600).proposal(0, "fallback-wrong", None, &[]),
                &[Prevote(0, NIL), Covers(Point::V6Fail), Covers(Point::V4Fail)],
            )
        },
        Case {
            setting: Setting::Fallback,
            ..case(
                "L18",
                "every vote in, no agreement, the fallback on, before the deadline: wait",
                1,
                |f| f.at(0).open(),
                |f| f.at(5).vote_set("no-agreement", 1),
                &[NoProposal, Covers(Point::L18Wait)],
            )
        },
        case(
            "L31",
            "round votes of a third future round of one signer are dropped",
            0,
            |f| f.ready(0).at(20).prevotes(5, NIL, &[2]).prevotes(6, NIL, &[2]),
            |f| f.at(30).prevotes(7, NIL, &[2]),
            &[Covers(Point::L31FutureBound), Tally(VoteKind::Prevote, 7, NIL, 0), InRound(0)],
        ),
        case(
            "agent",
            "a frame that does not decode",
            0,
            |f| f.ready(0),
            |f| f.at(20).input(Input::Malformed { from: AgentId(2) }),
            &[Rejects(Rejection::Malformed), Covers(Point::RejectMalformed)],
        ),
        case(
            "agent",
            "a session too far ahead",
            0,
            |f| f.ready(0),
            |f| f.at(20).from(2, ahead(f, 5_000)),
            &[Rejects(Rejection::WrongSession), Covers(Point::RejectWrongSession)],
        ),
        case(
            "agent",
            "the buffer of a session whose registry epoch is not ready is full",
            0,
            |f| (0..4_096).fold(f.ready(0), |s, _| s.from(2, ahead(f, 100))),
            |f| f.at(20).from(2, ahead(f, 100)),
            &[Rejects(Rejection::BufferFull), Covers(Point::RejectBufferFull)],
        ),
        Case {
            setting: Setting::Mutation(Mutation::PolRoundZeroRejected),
            ..case(
                "L26",
                "pol-round-zero-rejected: a re-proposal with valid round 0 is refused",
                0,
                |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
                |f| f.at(310).proposal(1, A, Some(0), &[1, 2, 3]),
                &[Rejects(Rejection::InvalidProposal), Covers(Point::RejectInvalidProposal)],
            )
        },
    ]
}

/// Round 1's re-proposal of A with the polka of round 0 (prevotes of 1, 2 and 3), changed by
/// `edit`: each certificate check of L26–L27 by its failing condition.
fn polka_fault(name: &'static str, point: Point, edit: fn(&Fx, &mut Proposal)) -> Case {
    case(
        "L26–L27",
        name,
        0,
        |f| f.ready(0).at(300).timeout(0, TimerKind::Precommit),
        move |f| {
            let mut p = f.proposal(1, A, Some(0), &[1, 2, 3]);
            edit(f, &mut p);
            f.at(310).from(2, Message::Proposal(Box::new(p)))
        },
        &[Covers(point)],
    )
}

/// The polka certificate's checks (L26–L27), each failing alone, and a certificate that holds.
pub(super) fn polka_certificates() -> Vec<Case> {
    vec![
        polka_fault("a certificate of q prevotes", Point::PolkaCertOk, |_, _| {}),
        polka_fault("a precommit in the certificate", Point::PolkaCertKind, |_, p| {
            p.polka[0].kind = VoteKind::Precommit
        }),
        polka_fault("a prevote of another session", Point::PolkaCertSession, |_, p| p.polka[0].session = SessionId(2)),
        polka_fault("a prevote of another round", Point::PolkaCertRound, |_, p| p.polka[0].round = 5),
        polka_fault("a prevote for another value", Point::PolkaCertValue, |f, p| p.polka[0].value = f.id(B)),
        polka_fault("a prevote from outside the committee", Point::PolkaCertNotMember, |f, p| {
            p.polka.push(f.round_vote(VoteKind::Prevote, 0, 4, A))
        }),
        polka_fault("one signer twice", Point::PolkaCertDuplicateSigner, |_, p| p.polka.push(p.polka[0].clone())),
        polka_fault("a forged prevote", Point::PolkaCertBadSignature, |_, p| p.polka[0].signature = Signature::ZERO),
        polka_fault("fewer than q prevotes", Point::PolkaCertTooFew, |_, p| p.polka.truncate(2)),
    ]
}

/// Every abstract state an own round vote can be sent in (docs/coverage.md).
pub(super) fn abstract_states() -> Vec<Case> {
    let state = |name, setup: for<'f> fn(&'f Fx) -> Script<'f>, input: for<'f> fn(&'f Fx) -> Script<'f>, point| {
        case("state", name, 0, setup, input, &[Covers(point)][..])
    };
    use Point::*;
    vec![
        state(
            "prevote, unlocked, proposal",
            |f| f.ready(0),
            |f| f.at(20).proposal(0, A, None, &[]),
            PrevoteNoneNoneProposal,
        ),
        state(
            "prevote, unlocked, no proposal",
            |f| f.ready(0),
            |f| f.at(200).timeout(0, TimerKind::Propose),
            PrevoteNoneNone,
        ),
        state("prevote, valid older, proposal", valid_a_in_0, propose, PrevoteNoneOlderProposal),
        state(
            "prevote, valid older, no proposal",
            valid_a_in_0,
            |f| f.at(500).timeout(1, TimerKind::Propose),
            PrevoteNoneOlder,
        ),
        state("prevote, locked older, proposal", locked_b_in_0, propose, PrevoteOlderOlderProposal),
        state(
            "prevote, locked older, no proposal",
            locked_b_in_0,
            |f| f.at(500).timeout(1, TimerKind::Propose),
            PrevoteOlderOlder,
        ),
        state(
            "precommit, unlocked, proposal",
            |f| f.ready(0).at(20).proposal(0, A, None, &[]),
            |f| f.at(100).timeout(0, TimerKind::Prevote),
            PrecommitNoneNoneProposal,
        ),
        state(
            "precommit, unlocked, no proposal",
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose),
            |f| f.at(250).timeout(0, TimerKind::Prevote),
            PrecommitNoneNone,
        ),
        state(
            "precommit, valid older, proposal",
            |f| valid_a_in_0(f).at(310).proposal(1, A, None, &[]),
            |f| f.at(400).timeout(1, TimerKind::Prevote),
            PrecommitNoneOlderProposal,
        ),
        state(
            "precommit, valid older, no proposal",
            |f| valid_a_in_0(f).at(500).timeout(1, TimerKind::Propose),
            |f| f.at(600).timeout(1, TimerKind::Prevote),
            PrecommitNoneOlder,
        ),
        state(
            "precommit, locked older, proposal",
            |f| locked_b_in_0(f).at(310).proposal(1, A, None, &[]),
            |f| f.at(400).timeout(1, TimerKind::Prevote),
            PrecommitOlderOlderProposal,
        ),
        state(
            "precommit, locked older, no proposal",
            |f| locked_b_in_0(f).at(500).timeout(1, TimerKind::Propose),
            |f| f.at(600).timeout(1, TimerKind::Prevote),
            PrecommitOlderOlder,
        ),
        state(
            "precommit, locked in this round",
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).prevotes(0, A, &[1]),
            |f| f.at(30).prevotes(0, A, &[2]),
            PrecommitSameSameProposal,
        ),
    ]
}

/// Points only the simulator records: rounds ahead of the slowest honest agent (sim's tests).
const SIMULATOR: [Point; 4] = [Point::Ahead0, Point::Ahead1, Point::Ahead2, Point::Ahead3Plus];

/// Points that need more than four agents: [`engine_guards_with_seven_agents`].
const SEVEN_AGENTS: [Point; 2] = [Point::V10Fail, Point::V12Pass];

/// Every point of the table is reached by a row, or is listed above with where it is reached.
#[test]
fn every_point_is_reached_by_a_row() {
    let mut reached = Coverage::default();
    for table in TABLES {
        reached.merge(&run(&table()));
    }
    let elsewhere = |p: &Point| SIMULATOR.contains(p) || SEVEN_AGENTS.contains(p);
    let missed: Vec<&str> = reached.missed().filter(|p| !elsewhere(p)).map(Point::name).collect();
    assert!(missed.is_empty(), "no row reaches {missed:?}");
}

/// V10 turning a resolution into no decision, and V12's evidence analysis, need f ≥ 2 or five
/// agents: the engine's guards of a seven-agent committee are counted when a value's outcome is
/// computed (the detector off, so that no flag changes the class).
#[test]
fn engine_guards_with_seven_agents() {
    let mut engine = EngineConfig::default();
    engine.detector.kind = DetectorKind::None;
    let registry = Registry::seed_committee(7, &engine);
    let keys = sim_committee(9, 7);
    let protocol = ProtocolConfig::default();
    let coverage = Coverage::default();
    let ctx = Ctx {
        me: AgentId(0),
        now: 0,
        signer: &keys.agents[0],
        verifier: &keys.keyring,
        registry: &registry,
        engine: &engine,
        protocol: &protocol,
        coverage: &coverage,
    };
    let spec =
        SessionSpec { session: S, query: "q".into(), candidates: (0..4).map(CandidateId).collect(), opened_ms: 0 };
    let spec = SignedSpec { signature: keys.client.sign(&wire::spec_signing_bytes(&spec)), spec };
    let vote = |agent: u32, choice: Option<(u32, u32)>| {
        let mut v = AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            S,
            CandidateId(choice.map_or(0, |(c, _)| c)),
            Ppm::saturating(900_000),
            Ppm::saturating(choice.map_or(500_000, |(_, confidence)| u64::from(confidence))),
        );
        if choice.is_none() {
            v.value = VoteValue::Abstain { reason: "unsure".into() };
        }
        let signature = keys.agents[agent as usize].sign(&wire::vote_signing_bytes(&v));
        SignedVote { vote: v, signature }
    };
    // A plurality of two (= f) and one strong dissenter: V12 finds no minority, V10 refuses.
    // (0.9 reaches every specialisation's confidence threshold without being strong dissent.)
    let plurality: Vec<SignedVote> = [Some((0, 900_000)), Some((0, 900_000)), Some((1, 950_000)), Some((2, 900_000))]
        .into_iter()
        .chain([Some((3, 900_000)), None, None])
        .zip(0..)
        .map(|(choice, agent)| vote(agent, choice))
        .collect();
    let (outcome, _) = outcome_of(ProposalMode::Normal, &spec, &plurality, &ctx);
    assert!(matches!(outcome, AgreedOutcome::NoDecision { .. }), "{outcome:?}");
    assert_eq!((coverage.count(Point::V12Fail), coverage.count(Point::V10Fail)), (1, 1));
    // Four for candidate 0 (57%), three strong dissenters (f + 1) for candidate 1: V12 passes.
    let minority: Vec<SignedVote> =
        (0..7).map(|a| vote(a, Some(if a < 4 { (0, 900_000) } else { (1, 950_000) }))).collect();
    let _ = outcome_of(ProposalMode::Normal, &spec, &minority, &ctx);
    assert_eq!(coverage.count(Point::V12Pass), 1);
}
