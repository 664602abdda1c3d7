//! Protocol coverage of one run (docs/coverage.md): the points the honest agents reached,
//! merged at the end of the run, and the one kind of point only the simulator sees: how many
//! rounds ahead of the slowest honest agent of its session an honest agent's own round vote is.

use std::collections::BTreeMap;
use std::sync::Mutex;

use consensus_core::protocol::coverage::{Coverage, Point};
use consensus_core::protocol::{Node, Round, VoteKind};
use consensus_core::{AgentId, SessionId};

/// What the world records of a run's coverage.
#[derive(Default)]
pub struct RunCoverage {
    /// The simulator's own points (rounds ahead).
    points: Coverage,
    /// Per session, each honest agent's newest own round vote: (round, kind).
    newest: BTreeMap<SessionId, BTreeMap<AgentId, (Round, VoteKind)>>,
}

impl RunCoverage {
    /// An honest agent sent its own round vote of (`round`, `kind`) in `session`: counts how
    /// many rounds it is ahead of the slowest honest agent that voted in the session. Copies (a
    /// broadcast is one send per peer, retransmissions) and votes of earlier rounds (sent to a
    /// lagging peer, L69) count once, at the vote that moved the agent on.
    pub fn own_round_vote(&mut self, agent: AgentId, session: SessionId, round: Round, kind: VoteKind) {
        let agents = self.newest.entry(session).or_default();
        if agents.get(&agent).is_some_and(|newest| *newest >= (round, kind)) {
            return;
        }
        agents.insert(agent, (round, kind));
        let slowest = agents.values().map(|(r, _)| *r).min().unwrap_or(round);
        self.points.record(Point::ahead(round.saturating_sub(slowest)));
    }

    /// The run's coverage: these points and every honest agent's (a node whose lock was
    /// poisoned by a panic, which the executor reports anyway, adds nothing).
    pub fn merged<'n>(&self, honest: impl IntoIterator<Item = &'n Mutex<Box<dyn Node + Send>>>) -> Coverage {
        let mut all = self.points.clone();
        for node in honest {
            if let Some(coverage) = node.lock().ok().as_ref().and_then(|n| n.coverage()) {
                all.merge(coverage);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_ahead_count_once_per_vote_from_the_slowest_voter() {
        let mut c = RunCoverage::default();
        let (s, t) = (SessionId(1), SessionId(2));
        c.own_round_vote(AgentId(0), s, 0, VoteKind::Prevote);
        c.own_round_vote(AgentId(0), s, 0, VoteKind::Prevote); // a copy to another peer
        c.own_round_vote(AgentId(1), s, 2, VoteKind::Prevote);
        c.own_round_vote(AgentId(1), s, 5, VoteKind::Precommit);
        c.own_round_vote(AgentId(1), s, 1, VoteKind::Precommit); // an older vote sent to a laggard
        c.own_round_vote(AgentId(2), t, 9, VoteKind::Prevote); // alone in its session
        let points = c.merged([]);
        let count = |p| points.count(p);
        assert_eq!(
            (count(Point::Ahead0), count(Point::Ahead1), count(Point::Ahead2), count(Point::Ahead3Plus)),
            (2, 0, 1, 1)
        );
    }
}
