//! Rows for docs/protocol.md L62–L77.

use super::Expect::*;
use super::*;

/// Agent 0 decided A in round 0 at 20 ms.
fn decided(f: &Fx) -> Script<'_> {
    f.ready(0).at(20).proposal(0, A, None, &[]).precommits(0, A, &[1, 2, 3])
}

fn sync(next: u64) -> Message {
    Message::Sync { next: SessionId(next) }
}

pub(super) fn retransmission_and_polka_gossip_l62_to_l65() -> Vec<Case> {
    vec![
        case(
            "L62–L63",
            "the retransmit tick re-sends the own vote and round votes of the current round",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose),
            |f| f.at(300).timeout(0, TimerKind::Retransmit),
            &[BroadcastsOwnVote, Prevote(0, NIL), Schedules(TimerKind::Retransmit, 400), NoProposal],
        ),
        case(
            "L62",
            "the proposer re-sends its proposal of the current round",
            1,
            |f| f.ready(1),
            |f| f.at(100).timeout(0, TimerKind::Retransmit),
            &[Relays(0), BroadcastsOwnVote],
        ),
        case(
            "L62",
            "after deciding: nothing, and the tick stops",
            0,
            decided,
            |f| f.at(100).timeout(0, TimerKind::Retransmit),
            &[NoRoundVote, SendsNothing, NoSchedule(TimerKind::Retransmit)],
        ),
        case(
            "L64–L65",
            "past its valid round: the proposal of that round and the q prevotes of its polka",
            0,
            |f| {
                f.ready(0)
                    .at(20)
                    .proposal(0, A, None, &[])
                    .prevotes(0, A, &[1, 2])
                    .at(300)
                    .timeout(0, TimerKind::Precommit)
            },
            |f| f.at(400).timeout(0, TimerKind::Retransmit),
            &[Relays(0), PrevotesRelayed(0, A, 3)],
        ),
        case(
            "L64",
            "while the valid round is the current round: no polka gossip",
            0,
            |f| f.ready(0).at(20).proposal(0, A, None, &[]).prevotes(0, A, &[1, 2]),
            |f| f.at(100).timeout(0, TimerKind::Retransmit),
            &[NoProposal, PrevotesRelayed(0, A, 1)],
        ),
    ]
}

pub(super) fn helping_peers_l66_to_l69() -> Vec<Case> {
    vec![
        case(
            "L66–L67",
            "after deciding, a message from a peer is answered with the certificate",
            0,
            decided,
            |f| f.at(200).votes(&[(2, 0)], 0),
            &[SendsCommit(AgentId(2))],
        ),
        case("L66", "the client's Open too", 0, decided, |f| f.at(200).open(), &[SendsCommit(CLIENT)]),
        case(
            "L66",
            "not within a retransmit interval of the decision (peers deciding at the same moment)",
            0,
            decided,
            |f| f.at(50).votes(&[(2, 0)], 0),
            &[SendsNothing],
        ),
        case(
            "L67",
            "at most once per retransmit interval",
            0,
            |f| decided(f).at(200).votes(&[(2, 0)], 0),
            |f| f.at(250).votes(&[(2, 0)], 0),
            &[SendsNothing],
        ),
        case(
            "L68–L69",
            "a peer's own round vote of an earlier round: send it ours of that round",
            0,
            |f| {
                let s = f.ready(0).at(200).timeout(0, TimerKind::Propose).prevotes(0, NIL, &[1, 2]);
                s.at(300).timeout(0, TimerKind::Precommit)
            },
            |f| f.at(310).prevotes(0, NIL, &[3]),
            &[SendsRoundVote(AgentId(3), VoteKind::Prevote, 0), SendsRoundVote(AgentId(3), VoteKind::Precommit, 0)],
        ),
        case(
            "L68",
            "a vote of an earlier round relayed by another agent is not answered",
            0,
            |f| f.ready(0).at(200).timeout(0, TimerKind::Propose).at(300).timeout(0, TimerKind::Precommit),
            |f| f.at(310).from(2, Message::RoundVote(f.round_vote(VoteKind::Prevote, 0, 3, NIL))),
            &[SendsNothing],
        ),
    ]
}

pub(super) fn sessions_and_restarts_l70_to_l77() -> Vec<Case> {
    vec![
        case(
            "L70–L71",
            "a session whose spec is unknown: ask the next member in turn for it",
            0,
            |f| f.at(0).prevotes(0, NIL, &[2]),
            |f| f.at(300).timeout(0, TimerKind::Retransmit),
            &[KnowsSpec(false), SendsSync(AgentId(1), 1), Schedules(TimerKind::Retransmit, 400)],
        ),
        case(
            "L72–L73",
            "Sync(next): the certificates held from next on",
            0,
            decided,
            |f| f.at(200).from(2, sync(0)),
            &[SendsCommit(AgentId(2))],
        ),
        case(
            "L72",
            "at most once per retransmit interval",
            0,
            |f| decided(f).at(200).from(2, sync(0)),
            |f| f.at(250).from(2, sync(0)),
            &[SendsNothing],
        ),
        case(
            "L74–L75",
            "a restart re-arms retransmission, vote collection, the deadline and the propose timeout",
            0,
            |f| f.ready(0),
            |f| f.at(50).input(Input::Recover),
            &[
                Schedules(TimerKind::Retransmit, 50),
                Schedules(TimerKind::VoteCollection, 150),
                Schedules(TimerKind::Deadline, 500),
                Schedules(TimerKind::Propose, 250),
                NoSchedule(TimerKind::Prevote),
                NoSchedule(TimerKind::Precommit),
            ],
        ),
        case(
            "L74",
            "a restart re-requests an evaluation lost in the crash",
            0,
            |f| f.at(0).open(),
            |f| f.at(50).input(Input::Recover),
            &[Evaluates],
        ),
        case(
            "L75",
            "the precommit timeout only once q precommits of the round were seen",
            0,
            |f| f.ready(0).at(30).precommits(0, NIL, &[1, 2, 3]),
            |f| f.at(60).input(Input::Recover),
            &[Schedules(TimerKind::Precommit, 110)],
        ),
        case(
            "L76",
            "the status tick: Sync(applied) to the next member in turn, re-armed",
            0,
            |f| f.ready(0),
            |f| f.at(500).input(Input::Timeout(Timer { session: SessionId(0), round: 0, kind: TimerKind::Status })),
            &[SendsSync(AgentId(1), 0), Schedules(TimerKind::Status, 1000)],
        ),
        case(
            "L77",
            "a Sync from a peer that applied more: Sync back",
            0,
            |f| f.ready(0),
            |f| f.at(10).from(3, sync(5)),
            &[SendsSync(AgentId(3), 0)],
        ),
        case(
            "L77",
            "a Sync from a peer that applied no more: no Sync back",
            0,
            |f| f.ready(0),
            |f| f.at(10).from(3, sync(0)),
            &[SendsNothing],
        ),
    ]
}
