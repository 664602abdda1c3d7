//! The vote keeper: every validly signed prevote and precommit of one session, by (round,
//! kind), counted per value by distinct signer (docs/protocol.md L31–L33).
//!
//! Tendermint's rules ask "q Prevote(s, r, id(v))", "q Prevote(s, r, *)" and "f + 1 messages
//! of round r". An equivocating agent signs two values in one (round, kind); an honest agent
//! that kept only the first one it received could never count the other, and agents that saw
//! different sides of the equivocation would disagree about polkas forever (issue 9). So the
//! keeper keeps both sides as evidence and counts each for its own value; "q for any value"
//! counts distinct signers, so the equivocator still counts once there.
//!
//! Memory is bounded per (round, kind): a signer's first [`MAX_VALUES_PER_SIGNER`] distinct
//! values are kept and counted; further distinct values are reported as evidence only, except
//! one value carried in a checked polka certificate (q distinct valid signatures). With at most
//! f Byzantine agents, at most one value per round can have such a certificate (two q-sets share
//! an honest agent, who prevotes once), so a signer holds at most `MAX_VALUES_PER_SIGNER + 1`
//! votes per (round, kind) whatever it signs.
//!
//! The votes are stored by value (moved in, never cloned on the counting path); queries borrow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::AgentId;

use super::messages::{Round, RoundVote, ValueId, VoteKind};

/// Distinct values a signer may have counted per (round, kind) outside a polka certificate.
pub(crate) const MAX_VALUES_PER_SIGNER: usize = 2;

/// Rounds above `round_p + 1` in which one signer's votes are kept (CometBFT keeps two
/// "catch-up rounds" per peer likewise): enough for L54, and a Byzantine agent signing votes
/// for endless future rounds cannot grow the keeper.
pub(crate) const MAX_FUTURE_ROUNDS_PER_SIGNER: usize = 2;

/// What [`VoteKeeper::add`] did with a vote.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added<'a> {
    /// The signer's first vote in this (round, kind): kept and counted.
    New,
    /// An identical copy of a held vote: nothing changed (counted again only under the
    /// `duplicate-votes-counted` mutation).
    Duplicate,
    /// A different value from a signer that already voted in this (round, kind): kept and
    /// counted for its own value (evidence: `first` and `second`).
    Equivocation {
        /// The signer's first vote of the (round, kind).
        first: &'a RoundVote,
        /// The vote just kept.
        second: &'a RoundVote,
    },
    /// Another distinct value beyond the bound: evidence only, not kept, not counted; the vote
    /// is handed back.
    OverBound {
        /// The signer's first vote of the (round, kind).
        first: &'a RoundVote,
        /// The refused vote.
        refused: RoundVote,
    },
}

/// The votes of one (round, kind).
#[derive(Debug, Default, Serialize, Deserialize)]
struct RoundVotes {
    /// Each signer's distinct votes, in the order received (the first is the first received).
    by_signer: BTreeMap<AgentId, Vec<RoundVote>>,
    /// Distinct signers per value (`None`: nil).
    tally: BTreeMap<Option<ValueId>, usize>,
    /// `duplicate-votes-counted` only: copies of held votes, counted again, per value.
    copies: BTreeMap<Option<ValueId>, usize>,
    /// Sum of `copies`.
    copies_total: usize,
}

impl RoundVotes {
    fn holds(&self, v: &RoundVote) -> bool {
        self.by_signer.get(&v.agent).is_some_and(|held| held.iter().any(|h| h == v))
    }
}

/// Every round vote of one session at one agent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct VoteKeeper {
    rounds: BTreeMap<(Round, VoteKind), RoundVotes>,
    /// Distinct votes refused for the bound (evidence only).
    over_bound: u64,
}

impl VoteKeeper {
    /// Keeps a vote whose signature, session and signer the caller has checked. `certified`:
    /// it comes with q distinct valid signatures for its value (a polka certificate), so it may
    /// exceed the per-signer bound by one value. `count_copies`: the `duplicate-votes-counted`
    /// mutation (an identical copy counts again).
    pub(crate) fn add(&mut self, v: RoundVote, certified: bool, count_copies: bool) -> Added<'_> {
        let votes = self.rounds.entry((v.round, v.kind)).or_default();
        let held = votes.by_signer.entry(v.agent).or_default();
        if held.contains(&v) {
            if count_copies {
                *votes.copies.entry(v.value).or_default() += 1;
                votes.copies_total += 1;
            }
            return Added::Duplicate;
        }
        // A second signature over the same value is not a second vote for it.
        if held.iter().any(|h| h.value == v.value) {
            return Added::Duplicate;
        }
        let room = if certified { MAX_VALUES_PER_SIGNER + 1 } else { MAX_VALUES_PER_SIGNER };
        if held.len() >= room {
            self.over_bound = self.over_bound.saturating_add(1);
            return match held.first() {
                Some(first) => Added::OverBound { first, refused: v },
                None => Added::Duplicate,
            };
        }
        *votes.tally.entry(v.value).or_default() += 1;
        held.push(v);
        match (held.first(), held.last()) {
            (Some(first), Some(second)) if held.len() > 1 => Added::Equivocation { first, second },
            _ => Added::New,
        }
    }

    /// Whether a vote of `agent` in `round` may be kept while this agent is in round `current`:
    /// always up to `current + 1`, beyond that in at most [`MAX_FUTURE_ROUNDS_PER_SIGNER`]
    /// rounds per signer.
    pub(crate) fn admits(&self, agent: AgentId, round: Round, current: Round) -> bool {
        let horizon = current.saturating_add(1);
        if round <= horizon {
            return true;
        }
        let mut rounds = 0usize;
        let mut last = None;
        for ((r, _), votes) in self.rounds.range((horizon.saturating_add(1), VoteKind::Prevote)..) {
            if votes.by_signer.contains_key(&agent) && last.replace(*r) != Some(*r) {
                if *r == round {
                    return true;
                }
                rounds += 1;
            }
        }
        rounds < MAX_FUTURE_ROUNDS_PER_SIGNER
    }

    /// Whether exactly this vote (same signature) is held: a copy needs no second check.
    pub(crate) fn holds(&self, v: &RoundVote) -> bool {
        self.rounds.get(&(v.round, v.kind)).is_some_and(|votes| votes.holds(v))
    }

    /// Distinct signers for `value` in (round, kind) (plus copies under the mutation).
    pub(crate) fn count(&self, round: Round, kind: VoteKind, value: Option<ValueId>) -> usize {
        self.rounds.get(&(round, kind)).map_or(0, |votes| {
            let distinct = votes.tally.get(&value).copied().unwrap_or(0);
            distinct.saturating_add(votes.copies.get(&value).copied().unwrap_or(0))
        })
    }

    /// Distinct signers for any value in (round, kind): an equivocator counts once (plus copies
    /// under the mutation).
    pub(crate) fn count_any(&self, round: Round, kind: VoteKind) -> usize {
        self.rounds.get(&(round, kind)).map_or(0, |votes| votes.by_signer.len().saturating_add(votes.copies_total))
    }

    /// The held votes for `value` in (round, kind), one per signer, ascending by signer.
    pub(crate) fn votes_for(
        &self,
        round: Round,
        kind: VoteKind,
        value: Option<ValueId>,
    ) -> impl Iterator<Item = &RoundVote> + '_ {
        self.rounds
            .get(&(round, kind))
            .into_iter()
            .flat_map(|votes| votes.by_signer.values())
            .filter_map(move |held| held.iter().find(|v| v.value == value))
    }

    /// `agent`'s first vote in (round, kind): for an honest agent, its only one.
    pub(crate) fn first_of(&self, round: Round, kind: VoteKind, agent: AgentId) -> Option<&RoundVote> {
        self.rounds.get(&(round, kind)).and_then(|votes| votes.by_signer.get(&agent)).and_then(|held| held.first())
    }

    /// The rounds above `round` that hold any vote, descending.
    pub(crate) fn rounds_above(&self, round: Round) -> impl Iterator<Item = Round> + '_ {
        let start = (round.saturating_add(1), VoteKind::Prevote);
        let mut last = None;
        self.rounds
            .range(start..)
            .rev()
            .map(|((r, _), _)| *r)
            .filter(move |r| round < *r && last.replace(*r) != Some(*r))
    }

    /// Distinct agents that signed a prevote or precommit in `round`, together with `extra`
    /// (a proposer): the L54 (f + 1) count.
    pub(crate) fn senders(&self, round: Round, extra: Option<AgentId>) -> usize {
        let prevoters = self.rounds.get(&(round, VoteKind::Prevote)).map(|v| &v.by_signer);
        let precommitters = self.rounds.get(&(round, VoteKind::Precommit)).map(|v| &v.by_signer);
        let mut a = prevoters.into_iter().flat_map(|m| m.keys()).peekable();
        let mut b = precommitters.into_iter().flat_map(|m| m.keys()).peekable();
        let mut count = 0usize;
        let mut extra_seen = false;
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => a.next(),
                (Some(x), Some(y)) if y < x => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(agent) = next {
                count += 1;
                extra_seen |= Some(*agent) == extra;
            }
        }
        if extra.is_some() && !extra_seen {
            count += 1;
        }
        count
    }

    /// Distinct votes refused because their signer had reached the bound.
    #[cfg(test)]
    pub(crate) fn over_bound(&self) -> u64 {
        self.over_bound
    }

    /// Votes kept, over all rounds and kinds (for memory checks).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.rounds.values().flat_map(|votes| votes.by_signer.values()).map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Signature;
    use crate::types::SessionId;
    use proptest::prelude::*;

    fn id(x: u8) -> ValueId {
        ValueId([x; 32])
    }

    /// A vote with a signature that depends on everything it covers (a stand-in for a real one).
    fn vote(kind: VoteKind, round: Round, agent: u32, value: Option<u8>) -> RoundVote {
        let mut sig = [0u8; 64];
        sig[0] = value.map_or(0, |x| x.wrapping_add(1));
        sig[1..5].copy_from_slice(&agent.to_le_bytes());
        sig[5..9].copy_from_slice(&round.to_le_bytes());
        sig[9] = kind as u8;
        RoundVote {
            kind,
            session: SessionId(0),
            round,
            value: value.map(id),
            agent: AgentId(agent),
            signature: Signature(sig),
        }
    }

    fn pv(round: Round, agent: u32, value: Option<u8>) -> RoundVote {
        vote(VoteKind::Prevote, round, agent, value)
    }

    #[derive(Debug)]
    struct Case {
        name: &'static str,
        /// (agent, value, certified) prevotes of round 0, in arrival order.
        feed: &'static [(u32, Option<u8>, bool)],
        /// Expected distinct signers for value 1, for nil, and for any value.
        for_one: usize,
        for_nil: usize,
        any: usize,
        /// Expected equivocation reports.
        equivocations: usize,
    }

    const CASES: &[Case] = &[
        Case {
            name: "honest split",
            feed: &[(0, Some(1), false), (1, Some(1), false), (2, None, false)],
            for_one: 2,
            for_nil: 1,
            any: 3,
            equivocations: 0,
        },
        Case {
            name: "duplicates count once",
            feed: &[(0, Some(1), false), (0, Some(1), false), (0, Some(1), true), (1, None, false), (1, None, false)],
            for_one: 1,
            for_nil: 1,
            any: 2,
            equivocations: 0,
        },
        Case {
            // The hidden lock of issue 9: this agent got agent 3's nil first; a proposal's
            // polka certificate then carries agent 3's prevote for the value. Both are kept, so
            // the certificate's q = 5 (n = 7) prevotes for value 1 are all counted.
            name: "hidden lock: nil seen first, certificate carries the value",
            feed: &[
                (3, None, false),
                (4, None, false),
                (0, Some(1), true),
                (1, Some(1), true),
                (2, Some(1), true),
                (3, Some(1), true),
                (5, Some(1), true),
            ],
            for_one: 5,
            for_nil: 2,
            any: 6,
            equivocations: 1,
        },
        Case {
            name: "equivocation split counts each side for its value, once for any",
            feed: &[(0, Some(1), false), (0, None, false), (1, None, false), (1, Some(1), false), (2, Some(1), false)],
            for_one: 3,
            for_nil: 2,
            any: 3,
            equivocations: 2,
        },
        Case {
            name: "a third value is evidence only",
            feed: &[(0, Some(1), false), (0, None, false), (0, Some(2), false), (0, Some(3), false)],
            for_one: 1,
            for_nil: 1,
            any: 1,
            equivocations: 3,
        },
        Case {
            name: "a certified value may exceed the bound once",
            feed: &[(0, Some(2), false), (0, None, false), (0, Some(1), true), (0, Some(3), true)],
            for_one: 1,
            for_nil: 1,
            any: 1,
            equivocations: 3,
        },
    ];

    #[test]
    fn tally_table() {
        for case in CASES {
            let mut keeper = VoteKeeper::default();
            let mut equivocations = 0;
            for (agent, value, certified) in case.feed {
                let added = keeper.add(pv(0, *agent, *value), *certified, false);
                if let Added::Equivocation { first, .. } | Added::OverBound { first, .. } = added {
                    assert_eq!(first.agent, AgentId(*agent), "{}", case.name);
                    equivocations += 1;
                }
            }
            assert_eq!(keeper.count(0, VoteKind::Prevote, Some(id(1))), case.for_one, "{}: value 1", case.name);
            assert_eq!(keeper.count(0, VoteKind::Prevote, None), case.for_nil, "{}: nil", case.name);
            assert_eq!(keeper.count_any(0, VoteKind::Prevote), case.any, "{}: any", case.name);
            assert_eq!(equivocations, case.equivocations, "{}: evidence", case.name);
            assert_eq!(keeper.count_any(0, VoteKind::Precommit), 0, "{}: kinds are apart", case.name);
            assert_eq!(keeper.count_any(1, VoteKind::Prevote), 0, "{}: rounds are apart", case.name);
            let listed = keeper.votes_for(0, VoteKind::Prevote, Some(id(1))).count();
            assert_eq!(listed, case.for_one, "{}: certificate", case.name);
        }
    }

    #[test]
    fn first_vote_is_kept_first_and_copies_are_recognised() {
        let mut keeper = VoteKeeper::default();
        assert_eq!(keeper.add(pv(2, 4, None), false, false), Added::New);
        let second = pv(2, 4, Some(9));
        let added = keeper.add(second.clone(), false, false);
        assert!(matches!(added, Added::Equivocation { first, second: s } if first.value.is_none() && *s == second));
        assert!(keeper.holds(&second) && keeper.holds(&pv(2, 4, None)));
        assert!(!keeper.holds(&pv(2, 4, Some(8))));
        assert_eq!(keeper.first_of(2, VoteKind::Prevote, AgentId(4)).map(|v| v.value), Some(None));
        assert_eq!(keeper.add(second, false, false), Added::Duplicate);
    }

    #[test]
    fn copies_count_again_only_under_the_mutation() {
        let mut keeper = VoteKeeper::default();
        for _ in 0..3 {
            keeper.add(pv(0, 1, Some(1)), false, true);
        }
        assert_eq!(keeper.count(0, VoteKind::Prevote, Some(id(1))), 3);
        assert_eq!(keeper.count_any(0, VoteKind::Prevote), 3);
        let mut honest = VoteKeeper::default();
        for _ in 0..3 {
            honest.add(pv(0, 1, Some(1)), false, false);
        }
        assert_eq!(honest.count(0, VoteKind::Prevote, Some(id(1))), 1);
    }

    #[test]
    fn a_second_signature_over_the_same_value_is_not_a_second_vote() {
        let mut keeper = VoteKeeper::default();
        keeper.add(pv(0, 1, Some(1)), false, false);
        let mut resigned = pv(0, 1, Some(1));
        resigned.signature.0[63] = 7;
        assert_eq!(keeper.add(resigned, true, false), Added::Duplicate);
        assert_eq!(keeper.count(0, VoteKind::Prevote, Some(id(1))), 1);
    }

    #[test]
    fn senders_count_distinct_agents_over_both_kinds_and_the_proposer() {
        let mut keeper = VoteKeeper::default();
        keeper.add(pv(3, 1, None), false, false);
        keeper.add(pv(3, 2, Some(1)), false, false);
        keeper.add(vote(VoteKind::Precommit, 3, 2, None), false, false);
        keeper.add(vote(VoteKind::Precommit, 3, 5, None), false, false);
        keeper.add(pv(1, 6, None), false, false);
        assert_eq!(keeper.senders(3, None), 3);
        assert_eq!(keeper.senders(3, Some(AgentId(5))), 3);
        assert_eq!(keeper.senders(3, Some(AgentId(0))), 4);
        assert_eq!(keeper.senders(2, None), 0);
        assert_eq!(keeper.rounds_above(0).collect::<Vec<_>>(), [3, 1]);
        assert_eq!(keeper.rounds_above(1).collect::<Vec<_>>(), [3]);
        assert_eq!(keeper.rounds_above(3).count(), 0);
    }

    #[test]
    fn future_rounds_are_bounded_per_signer() {
        let mut keeper = VoteKeeper::default();
        for round in [1, 5, 9, 9] {
            assert!(keeper.admits(AgentId(3), round, 0), "round {round}");
            keeper.add(pv(round, 3, None), false, false);
        }
        assert!(!keeper.admits(AgentId(3), 12, 0), "a third future round");
        assert!(keeper.admits(AgentId(3), 5, 0) && keeper.admits(AgentId(4), 12, 0));
        assert!(keeper.admits(AgentId(3), 12, 6), "round 5 is no longer in the future");
    }

    proptest! {
        /// Whatever a Byzantine agent signs, the keeper holds at most `MAX + 1` votes per signer
        /// and (round, kind); a value's count never exceeds the distinct signers of the round;
        /// "any" counts each signer once.
        #[test]
        fn bounded_and_distinct(feed in proptest::collection::vec((0u32..4, 0u32..7, proptest::option::of(0u8..6), any::<bool>()), 0..200)) {
            let mut keeper = VoteKeeper::default();
            let mut signers: BTreeMap<Round, std::collections::BTreeSet<u32>> = BTreeMap::new();
            for (round, agent, value, certified) in &feed {
                keeper.add(pv(*round, *agent, *value), *certified, false);
                signers.entry(*round).or_default().insert(*agent);
            }
            for (round, agents) in &signers {
                prop_assert_eq!(keeper.count_any(*round, VoteKind::Prevote), agents.len());
                let mut total = 0;
                for value in std::iter::once(None).chain((0u8..6).map(Some)) {
                    let c = keeper.count(*round, VoteKind::Prevote, value.map(id));
                    prop_assert!(c <= agents.len());
                    prop_assert_eq!(c, keeper.votes_for(*round, VoteKind::Prevote, value.map(id)).count());
                    total += c;
                }
                prop_assert!(total <= agents.len() * (MAX_VALUES_PER_SIGNER + 1));
            }
            prop_assert!(keeper.held() <= signers.values().map(|a| a.len()).sum::<usize>() * (MAX_VALUES_PER_SIGNER + 1));
            prop_assert_eq!(keeper.held() as u64 + keeper.over_bound() <= feed.len() as u64, true);
        }
    }
}
