//! The lazy reduction (docs/model.md, "Reductions"): a silent step t of agent p is followed
//! only by those steps u of p that need it (u does not commute with t), or by a silent step
//! that commutes with it and comes later in a fixed order of labels. Whether t and u commute
//! is checked on the states themselves, by running both orders.

use std::cmp::Ordering;
use std::sync::Arc;

use consensus_core::protocol::{Input, Timer};
use consensus_core::TimeMs;

use super::state::{Label, Memo, Msg, State, Succ, Worker};
use super::Links;

impl Label {
    /// A fixed total order on labels, by content (never by address): two commuting silent
    /// steps of one agent are explored in this order only.
    pub fn order(&self, other: &Label) -> Ordering {
        self.rank().cmp(&other.rank())
    }

    fn rank(&self) -> (u8, u32, &[u8], TimeMs, Option<Timer>) {
        match self {
            Label::Init(_) => (0, 0, &[], 0, None),
            Label::Deliver { to, msg } => (1, to.0, &msg.bytes, 0, None),
            Label::Fire { agent, at_ms, timer } => (2, agent.0, &[], *at_ms, Some(*timer)),
            Label::Inject { to, msg } => (3, to.0, &msg.bytes, 0, None),
        }
    }
}

/// Whether `label` is in `sorted` (ascending by [`Label::order`]).
pub fn contains(sorted: &[Label], label: &Label) -> bool {
    sorted.binary_search_by(|l| l.order(label)).is_ok()
}

/// Whether two states are the same global state: every part the fingerprint covers (agents,
/// clocks, timers, network, what the Byzantine agents saw) and the history; not the owner or
/// the pruned steps.
pub fn same_global(a: &State, b: &State) -> bool {
    let same_msgs = |x: &Arc<Msg>, y: &Arc<Msg>| Arc::ptr_eq(x, y) || x.bytes == y.bytes;
    a.agents == b.agents
        && a.now == b.now
        && a.timers == b.timers
        && a.net.len() == b.net.len()
        && a.net.iter().zip(&b.net).all(|((s, x), (t, y))| s == t && same_msgs(x, y))
        && a.seen.len() == b.seen.len()
        && a.seen.iter().zip(&b.seen).all(|(x, y)| same_msgs(x, y))
        && (Arc::ptr_eq(&a.history, &b.history) || *a.history == *b.history)
}

impl Worker<'_> {
    /// The steps of `t`'s agent to leave out after the silent step `t` (from `succs`, every
    /// successor of the state `t` was taken from, in any order): those that commute with `t`,
    /// unless silent and not earlier than `t` in [`Label::order`]. Ascending, `None` when empty.
    /// `index`: `succs`' positions ascending by label order.
    pub(super) fn lazy_pruned(
        &mut self,
        succs: &[Succ],
        index: &[usize],
        t: &Succ,
        injections: &[Arc<Msg>],
    ) -> Option<Arc<Vec<Label>>> {
        // `t.state` is owned by t's agent: its successors are that agent's steps only.
        let after = self.all_successors(&t.state, injections);
        let mut pruned = Vec::new();
        for u in &after {
            let found = index.binary_search_by(|&i| succs[i].label.order(&u.label));
            // Not enabled before t (a timer t set, or a self-loop there): needed, kept.
            let Ok(at) = found else { continue };
            // Kept whether or not it commutes (no need to run the other order): a later silent
            // step, or the same one again (at-least-once links: a second copy of t's message,
            // which swapping with t would not move anywhere).
            if u.silent && u.label.order(&t.label) != Ordering::Less {
                continue;
            }
            if self.commute(t, &succs[index[at]], u) {
                pruned.push(u.label.clone());
            }
        }
        pruned.sort_by(|a, b| a.order(b));
        (!pruned.is_empty()).then(|| Arc::new(pruned))
    }

    /// Whether the silent step `t` (taken at some state s) and the step u commute at s: `before`
    /// is u taken at s, `after` is u taken at t(s). They commute when t is still enabled and
    /// silent after u, both orders reach the same global state, and u lets out the same in
    /// both orders (the same silence and the same violation).
    pub(super) fn commute(&mut self, t: &Succ, before: &Succ, after: &Succ) -> bool {
        let invariant = |s: &Succ| s.violation.as_ref().map(|v| v.invariant.clone());
        if before.silent != after.silent || invariant(before) != invariant(after) {
            return false;
        }
        let Some(again) = self.redo(&before.state, &t.label) else { return false };
        again.silent && again.violation.is_none() && same_global(&again.state, &after.state)
    }

    /// The step `label` taken at `state`, if it is enabled there.
    pub(super) fn redo(&mut self, state: &State, label: &Label) -> Option<Succ> {
        match label {
            Label::Init(_) => None,
            Label::Deliver { to, msg } => {
                let i = state.net.iter().position(|(t, m)| t == to && m.bytes == msg.bytes)?;
                let held = state.net[i].1.clone();
                let mut from = state.clone();
                if self.links() == Links::ExactlyOnce {
                    from.net.remove(i);
                }
                let input = Input::Receive { from: held.from, message: held.message.clone() };
                let label = Label::Deliver { to: *to, msg: held.clone() };
                Some(self.step(&from, *to, input, Some(Memo::Msg(held)), None, &[], label))
            }
            Label::Fire { agent, at_ms, timer } => {
                let i = agent.0 as usize;
                if state.timers.get(i)?.first() != Some(&(*at_ms, *timer)) {
                    return None;
                }
                let mut from = state.clone();
                from.timers[i].remove(0);
                let input = Input::Timeout(*timer);
                Some(self.step(&from, *agent, input, Some(Memo::Timer(*timer)), Some(*at_ms), &[], label.clone()))
            }
            Label::Inject { to, msg } => {
                let input = Input::Receive { from: msg.from, message: msg.message.clone() };
                Some(self.step(state, *to, input, Some(Memo::Msg(msg.clone())), None, &[], label.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::byzantine::injections;
    use crate::model::{ModelConfig, Setup, Votes};
    use consensus_core::protocol::messages::Message;
    use consensus_core::AgentId;

    /// n = 4 with a full-power Byzantine agent (3), every honest agent voting candidate 0.
    fn four() -> Setup {
        let config = ModelConfig { votes: Votes::Fixed(vec![0, 0, 0, 0]), ..ModelConfig::default() };
        Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The owner's steps after `t` (taken at `init`), as the lazy reduction sees them.
    fn after(w: &mut Worker<'_>, t: &Succ, inject: &[Arc<Msg>]) -> Vec<Succ> {
        let mut m = t.state.clone();
        m.owner = t.label.agent();
        w.all_successors(&m, inject)
    }

    #[test]
    fn two_independent_absorptions_commute() {
        let setup = four();
        let mut w = Worker::new(&setup);
        let init = w.initial(&[0, 0, 0, 0]).state;
        let inject = injections(&setup, &init.seen);
        let at_init = w.all_successors(&init, &inject);
        let silent: Vec<&Succ> =
            at_init.iter().filter(|s| s.silent && matches!(s.label, Label::Inject { to: AgentId(1), .. })).collect();
        assert!(silent.len() >= 2, "agent 1 absorbs Byzantine messages silently");
        let mut pairs = 0;
        for t in &silent {
            for u in after(&mut w, t, &inject).iter().filter(|u| u.silent) {
                let Some(before) = at_init.iter().find(|s| s.label.order(&u.label) == Ordering::Equal) else {
                    continue;
                };
                if !w.commute(t, before, u) {
                    continue;
                }
                // Both orders reach one state; the other order commutes too.
                let u_first = before;
                let t_after_u = w.redo(&u_first.state, &t.label).unwrap_or_else(|| panic!("t still enabled"));
                assert!(same_global(&t_after_u.state, &u.state));
                let t_then = after(&mut w, u_first, &inject);
                let t_second = t_then.iter().find(|s| s.label.order(&t.label) == Ordering::Equal);
                let t_second = t_second.unwrap_or_else(|| panic!("t is enabled after u"));
                assert!(w.commute(u_first, t, t_second), "commutation is symmetric here");
                pairs += 1;
            }
        }
        assert!(pairs > 0, "some two Byzantine messages are absorbed independently");
        // The lazy reduction keeps exactly one order of each such pair.
        let mut index: Vec<usize> = (0..at_init.len()).collect();
        index.sort_by(|&a, &b| at_init[a].label.order(&at_init[b].label));
        let (t, u) = (silent[0], silent[1]);
        let first = if t.label.order(&u.label) == Ordering::Less { t } else { u };
        let second = if std::ptr::eq(first, t) { u } else { t };
        let pruned_after_first = w.lazy_pruned(&at_init, &index, first, &inject).unwrap_or_default();
        let pruned_after_second = w.lazy_pruned(&at_init, &index, second, &inject).unwrap_or_default();
        let second_after_first = after(&mut w, first, &inject);
        let s = second_after_first.iter().find(|s| s.label.order(&second.label) == Ordering::Equal);
        let commute = s.is_some_and(|s| w.commute(first, second, s));
        assert!(!contains(&pruned_after_first, &second.label), "the later label follows the earlier one");
        assert_eq!(
            contains(&pruned_after_second, &first.label),
            commute,
            "the earlier one is left out iff they commute"
        );
    }

    #[test]
    fn a_reception_that_changes_the_next_send_does_not_commute() {
        let setup = four();
        let mut w = Worker::new(&setup);
        let init = w.initial(&[0, 0, 0, 0]).state;
        let inject = injections(&setup, &init.seen);
        let at_init = w.all_successors(&init, &inject);
        // Agent 0 proposes round 0 once it holds a quorum of votes (q = 3: its own and two).
        let vote_of = |from: u32| {
            move |s: &&Succ| {
                matches!(&s.label, Label::Deliver { to: AgentId(0), msg }
                    if matches!(&msg.message, Message::Vote(v) if v.vote.agent == AgentId(from)))
            }
        };
        let t = at_init.iter().find(vote_of(1)).unwrap_or_else(|| panic!("agent 1's vote reaches agent 0"));
        assert!(t.silent, "one more vote is below the quorum: stored, nothing let out");
        let before = at_init.iter().find(vote_of(2)).unwrap_or_else(|| panic!("agent 2's vote reaches agent 0"));
        let later = after(&mut w, t, &inject);
        let u = later.iter().find(vote_of(2)).unwrap_or_else(|| panic!("still enabled after agent 1's vote"));
        assert!(before.silent, "without agent 1's vote, agent 2's is not a quorum either");
        assert!(!u.silent, "after it, agent 2's vote completes the quorum: agent 0 proposes");
        assert!(!w.commute(t, before, u));
        let index: Vec<usize> = {
            let mut i: Vec<usize> = (0..at_init.len()).collect();
            i.sort_by(|&a, &b| at_init[a].label.order(&at_init[b].label));
            i
        };
        let pruned = w.lazy_pruned(&at_init, &index, t, &inject).unwrap_or_default();
        assert!(!contains(&pruned, &u.label), "the timer needs the vote: it follows it");
    }
}
