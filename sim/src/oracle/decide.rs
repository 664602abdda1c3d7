//! The decision-time invariants (`integrity`, `agreement`, `external-validity`,
//! `unanimity-validity`, `support-validity`, `threshold`), checked at every honest decision.

use std::collections::BTreeSet;

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::{recompute, AgreedOutcome, Committee, DecisionRecord, Mutation, Round, ValueId};
use consensus_core::sign::Verifier;
use consensus_core::types::{ConsensusMethod, VoteValue};
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{names, signing, Oracle, SeenDecision};
use crate::words;

impl Oracle {
    /// Checks every decision-time invariant for one decision.
    pub fn on_decide(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        let session = record.session;
        let seen = SeenDecision {
            value: record.value,
            round: record.round,
            outcome: record.outcome.clone(),
            mode: record.mode,
            at_ms: now,
        };
        self.round_skip_on_decide(agent, session);
        self.locks_on_decide(agent, session);
        self.steps_on_decide(agent, session);
        let previous = self.decisions.entry(session).or_default().insert(agent, seen);
        self.evidence.on_decided(agent, session);
        // Deciding again after a restart whose log lost the first decision is not a second
        // decision (agreement still compares the values).
        if previous.is_some_and(|p| !self.durable.restarted_after(agent, p.at_ms)) {
            self.violate(names::INTEGRITY, step, now, format!("{agent} decided {session} a second time"));
        }
        let first = !self.first.contains_key(&session);
        let found = self.durable.on_decide(agent, session, &record.spec.spec.query, first, now);
        self.found(found, step, now);
        if self.promises.agreement {
            self.check_agreement(agent, record, step, now);
        }
        self.check_external_validity(agent, record, step, now);
        if self.promises.unanimity_validity {
            self.check_unanimity(agent, record, step, now);
        }
        self.check_threshold(agent, record, step, now);
        self.check_support(agent, record, step, now);
        if let std::collections::btree_map::Entry::Vacant(first) = self.first.entry(session) {
            first.insert(record.clone());
            self.start_reference(record, step, now);
            self.advance();
        }
    }

    /// Agreement is on the decided value (docs/protocol.md: Tendermint's agreement): two
    /// honest decisions of different values violate it even when their outcomes coincide,
    /// since different certified vote sets were decided. A decision without a value (the
    /// local-fallback mutation) is compared by outcome.
    pub(super) fn check_agreement(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(others) = self.decisions.get(&record.session) else { return };
        let differs = |d: &SeenDecision| match (d.value, record.value) {
            (Some(a), Some(b)) => a != b,
            _ => d.outcome != record.outcome,
        };
        let conflict = others.iter().find(|(a, d)| **a != agent && differs(d));
        if let Some((other, d)) = conflict {
            let detail = format!(
                "{agent} decided {} in {} but {other} decided {}",
                describe(record.value, record.round, &record.outcome),
                record.session,
                describe(d.value, d.round, &d.outcome)
            );
            self.violate(names::AGREEMENT, step, now, detail);
        }
    }

    pub(super) fn check_external_validity(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if record.value.is_none() {
            // The local-fallback mutation decides without a certified value: agreement judges it.
            return;
        }
        let session = record.session;
        let same_as_first = |f: &DecisionRecord| {
            f.mode == record.mode && f.outcome == record.outcome && f.spec == record.spec && f.votes == record.votes
        };
        if self.externally_valid.contains(&session) && self.first.get(&session).is_some_and(same_as_first) {
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(session)) else { return };
        let committee = Committee::of(registry, Mutation::None);
        let mut voters = BTreeSet::new();
        let mut problem = self.not_the_clients_spec(session, &record.spec);
        let spec_problem = problem.is_some();
        for v in record.votes.iter().filter(|_| !spec_problem) {
            let signed = self.keyring.verify(v.vote.agent, &signing::vote(&v.vote), &v.signature);
            if v.vote.session != session || !committee.contains(v.vote.agent) || !signed {
                problem = Some(format!(
                    "the vote of {} is not a correctly signed vote of this session's committee",
                    v.vote.agent
                ));
                break;
            }
            voters.insert(v.vote.agent);
        }
        if problem.is_none() && voters.len() < committee.vote_q {
            problem = Some(format!("only {} distinct voters, the quorum is {}", voters.len(), committee.vote_q));
        }
        if problem.is_none() {
            let (outcome, _) = recompute(record.mode, &record.spec, &record.votes, registry, &self.engine);
            if outcome != record.outcome {
                problem = Some(format!(
                    "it claims {} but its {} votes aggregate to {}",
                    words::outcome(&record.outcome),
                    record.votes.len(),
                    words::outcome(&outcome)
                ));
            }
        }
        match problem {
            Some(problem) => {
                self.violate(names::EXTERNAL_VALIDITY, step, now, format!("{agent} decided {session}: {problem}"))
            }
            None if !self.first.contains_key(&session) => {
                self.externally_valid.insert(session);
            }
            None => {}
        }
    }

    /// Why `spec` is not the client's signed specification of `session`, if it is not: it names
    /// another session, its client signature does not verify over the signing format
    /// ([`signing::spec`], the oracle's own encoding), or it is none of the specs the client
    /// opened the session with (when the run reports the client's opens).
    pub(super) fn not_the_clients_spec(&self, session: SessionId, spec: &SignedSpec) -> Option<String> {
        if spec.spec.session != session {
            return Some(format!("its spec names {}, not this session", spec.spec.session));
        }
        if !self.keyring.verify(self.protocol.client, &signing::spec(&spec.spec), &spec.signature) {
            return Some("its spec's client signature does not verify over the spec (signing format)".into());
        }
        if self.client_specs_reported && !self.client_specs.get(&session).is_some_and(|s| s.contains(&spec.spec)) {
            return Some(format!(
                "its spec ({:?}, {} candidates) is not the one the client opened the session with",
                spec.spec.query,
                spec.spec.candidates.len()
            ));
        }
        None
    }

    /// At a session's first decision: its honest reference starts, against the session's epoch.
    pub(super) fn start_reference(&mut self, record: &DecisionRecord, step: u64, now: TimeMs) {
        if self.reference.is_none() {
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(record.session)).cloned() else { return };
        let Some(reference) = self.reference.as_mut() else { return };
        if reference.start(record.session, registry, record.spec.spec.candidates.clone(), record.mode) {
            self.check_influence_bound(record.session, step, now);
        }
    }

    pub(super) fn epoch_of(&self, session: SessionId) -> u64 {
        session.0.saturating_add(1).saturating_sub(self.protocol.pipeline.max(1))
    }

    pub(super) fn check_unanimity(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(chosen) = record.outcome.chosen() else { return };
        let Some(votes) = self.honest_votes.get(&record.session) else { return };
        let mut choices = votes.values().map(|v| v.accepted);
        let Some(Some(first)) = choices.next() else { return };
        if choices.all(|c| c == Some(first)) && chosen != first {
            let detail = format!(
                "every honest agent that voted ({}) accepted {first} in {} but {agent} decided {chosen}",
                votes.len(),
                record.session
            );
            self.violate(names::UNANIMITY_VALIDITY, step, now, detail);
        }
    }

    /// V9–V10: a decided candidate has at least f + 1 accepting votes from distinct agents in
    /// the certified vote set (f = f_max of the session's committee), so one is honest.
    pub(super) fn check_support(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(chosen) = record.outcome.chosen() else { return };
        if record.value.is_none() {
            // The local-fallback mutation decides without a certified vote set.
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(record.session)) else { return };
        let n = Committee::of(registry, Mutation::None).members.len() as u64;
        let f = consensus_core::quorum::f_max(n);
        let supporters: BTreeSet<AgentId> = record
            .votes
            .iter()
            .filter(|v| v.vote.candidate == chosen && matches!(v.vote.value, VoteValue::Accept { .. }))
            .map(|v| v.vote.agent)
            .collect();
        if (supporters.len() as u64) <= f {
            let detail = format!(
                "{agent} decided {chosen} in {} with {} accepting vote(s) of {} in its vote set; f + 1 = {} needed",
                record.session,
                supporters.len(),
                record.votes.len(),
                f + 1
            );
            self.violate(names::SUPPORT_VALIDITY, step, now, detail);
        }
    }

    pub(super) fn check_threshold(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if let AgreedOutcome::Decided { method, agreement, .. } = &record.outcome {
            let by_threshold = matches!(method, ConsensusMethod::Threshold | ConsensusMethod::EarlyUnanimous);
            let t = self.engine.threshold;
            if by_threshold && !t.reached(u128::from(agreement.raw()), 1_000_000) {
                let detail = format!(
                    "{agent} decided {} by {} with agreement {} below the threshold {t}",
                    record.session,
                    words::method(*method),
                    words::percent(agreement.raw())
                );
                self.violate(names::THRESHOLD, step, now, detail);
            }
        }
    }
}

/// A decision for a violation's detail: value id (short hex), round and outcome, in words.
fn describe(value: Option<ValueId>, round: Option<Round>, outcome: &AgreedOutcome) -> String {
    let round = round.map_or_else(|| "without a round".to_owned(), |r| format!("in round {r}"));
    format!("{} {round} ({})", words::value(value), words::outcome(outcome))
}
