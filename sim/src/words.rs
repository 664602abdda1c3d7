//! Protocol values in words, for trace details, violations, CLI lines and diagrams: a reader
//! (or a checker parsing text) never sees Rust's `Debug` output of a protocol type.

use consensus_core::protocol::messages::{Proposal, RoundVote, VoteKind};
use consensus_core::protocol::{AgreedOutcome, Evidence, ProposalMode, Rejection, TimerKind, ValueId};
use consensus_core::types::{ConsensusMethod, EscalationAction};

/// `candidate 2 (by threshold, 80.0% agreement)`, `escalation to expert review (flagged agent 4)`,
/// `no decision (best support 40.0%)`.
pub fn outcome(o: &AgreedOutcome) -> String {
    match o {
        AgreedOutcome::Decided { chosen, method: m, agreement, byzantine } => {
            let flagged = flagged_agents(byzantine).map(|f| format!("; {f}")).unwrap_or_default();
            format!("candidate {} (by {}, {} agreement{flagged})", chosen.0, method(*m), percent(agreement.raw()))
        }
        AgreedOutcome::Escalated { action, byzantine } => {
            let flagged = flagged_agents(byzantine).map(|f| format!(" ({f})")).unwrap_or_default();
            format!("escalation to {}{flagged}", escalation(*action))
        }
        AgreedOutcome::NoDecision { achieved } => format!("no decision (best support {})", percent(achieved.raw())),
    }
}

/// `flagged agent 4`, `flagged agents 1, 3`; `None` for nobody.
fn flagged_agents(agents: &[consensus_core::AgentId]) -> Option<String> {
    let ids: Vec<String> = agents.iter().map(|a| a.0.to_string()).collect();
    match ids.len() {
        0 => None,
        1 => Some(format!("flagged agent {}", ids[0])),
        _ => Some(format!("flagged agents {}", ids.join(", "))),
    }
}

/// The method in words: `threshold`, `early unanimous`, `minority overrule`…
pub fn method(m: ConsensusMethod) -> &'static str {
    match m {
        ConsensusMethod::Threshold => "threshold",
        ConsensusMethod::EarlyUnanimous => "early unanimous",
        ConsensusMethod::WeightedTieBreak => "weighted tie-break",
        ConsensusMethod::EvidenceMajority => "evidence for the majority",
        ConsensusMethod::MinorityOverrule => "minority overrule",
        ConsensusMethod::MajorityWithDissent => "majority with dissent",
        ConsensusMethod::CachedPattern => "cached pattern",
        ConsensusMethod::TimeoutFallback => "timeout fallback",
    }
}

/// The name a structured field carries: the method's kebab-case name (`early-unanimous`), or
/// `escalation` / `no-decision` for an outcome without a candidate.
pub fn method_field(o: &AgreedOutcome) -> String {
    match o {
        AgreedOutcome::Decided { method: m, .. } => match serde_json::to_value(m) {
            Ok(serde_json::Value::String(name)) => name,
            _ => method(*m).replace(' ', "-"),
        },
        AgreedOutcome::Escalated { .. } => "escalation".to_owned(),
        AgreedOutcome::NoDecision { .. } => "no-decision".to_owned(),
    }
}

/// `human review`, `expert review`, `more information`.
pub fn escalation(action: EscalationAction) -> &'static str {
    match action {
        EscalationAction::HumanReview => "human review",
        EscalationAction::ExpertReview => "expert review",
        EscalationAction::RequestMoreInformation => "a request for more information",
    }
}

/// `normal` or `fallback`.
pub fn mode(m: ProposalMode) -> &'static str {
    match m {
        ProposalMode::Normal => "normal",
        ProposalMode::Fallback => "fallback",
    }
}

/// A value id as the trace's `value_id` field: 64 hex digits.
pub fn value_id(v: &ValueId) -> String {
    v.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value in running text: its first 16 hex digits (`value 3f2a…`), or `no value` for the
/// local-fallback mutation's decisions.
pub fn value(v: Option<ValueId>) -> String {
    v.map_or_else(|| "no value".to_owned(), |v| format!("value {:016x}", v.short()))
}

/// `prevote` or `precommit`.
pub fn vote_kind(kind: VoteKind) -> &'static str {
    match kind {
        VoteKind::Prevote => "prevote",
        VoteKind::Precommit => "precommit",
    }
}

/// `prevote round 2 by agent-3 for value 3f9c1e312cd7097b` (`for nil`).
pub fn round_vote(v: &RoundVote) -> String {
    let value = v.value.map_or_else(|| "nil".to_owned(), |x| value(Some(x)));
    format!("{} round {} by {} for {value}", vote_kind(v.kind), v.round, v.agent)
}

/// `proposal round 1 by agent-2 of value 3f9c… (valid round 0) with 4 votes: candidate 1 (…)`.
pub fn proposal(p: &Proposal) -> String {
    let valid = p.valid_round.map_or_else(|| "no valid round".to_owned(), |r| format!("valid round {r}"));
    format!(
        "proposal round {} by {} of {} ({valid}) with {} votes: {}",
        p.round,
        p.proposer,
        value(Some(ValueId::of(&p.value))),
        p.value.votes.len(),
        outcome(&p.value.outcome)
    )
}

/// Equivocation evidence in words: who signed what twice.
pub fn evidence(e: &Evidence) -> String {
    match e {
        Evidence::ConflictingVotes { first, second } => format!(
            "{} signed two different votes in {} (for candidate {} and candidate {})",
            first.vote.agent, first.vote.session, first.vote.candidate.0, second.vote.candidate.0
        ),
        Evidence::ConflictingRoundVotes { first, second } => format!(
            "{} signed two different {}s in round {} of {} ({} and {})",
            first.agent,
            vote_kind(first.kind),
            first.round,
            first.session,
            first.value.map_or_else(|| "nil".to_owned(), |x| value(Some(x))),
            second.value.map_or_else(|| "nil".to_owned(), |x| value(Some(x)))
        ),
        Evidence::ConflictingProposals { proposer, session, round } => {
            format!("{proposer} signed two different proposals in round {round} of {session}")
        }
    }
}

/// A unit variant's name in words: `VoteCollection` → `vote collection`.
pub fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// A timer that fired: `propose timeout round 2`, `retransmit timeout round 0`.
pub fn timer(kind: TimerKind, round: u32) -> String {
    format!("{} timeout round {round}", camel(&format!("{kind:?}")))
}

/// Why an agent rejected a message: `bad signature`, `wrong proposer`.
pub fn rejection(reason: &Rejection) -> String {
    camel(&format!("{reason:?}"))
}

/// Parts per million as a percentage with one decimal: `80.0%`.
pub fn percent(ppm: u32) -> String {
    format!("{:.1}%", f64::from(ppm) / 1e4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_core::{AgentId, CandidateId, Ppm};

    #[test]
    fn outcomes_read_as_words_without_debug_text() {
        let decided = AgreedOutcome::Decided {
            chosen: CandidateId(2),
            method: ConsensusMethod::EarlyUnanimous,
            agreement: Ppm::saturating(800_000),
            byzantine: vec![AgentId(4)],
        };
        assert_eq!(outcome(&decided), "candidate 2 (by early unanimous, 80.0% agreement; flagged agent 4)");
        assert_eq!(method_field(&decided), "early-unanimous");
        let escalated = AgreedOutcome::Escalated { action: EscalationAction::ExpertReview, byzantine: vec![] };
        assert_eq!(outcome(&escalated), "escalation to expert review");
        let flagged =
            AgreedOutcome::Escalated { action: EscalationAction::HumanReview, byzantine: vec![AgentId(1), AgentId(3)] };
        assert_eq!(outcome(&flagged), "escalation to human review (flagged agents 1, 3)");
        assert_eq!(method_field(&flagged), "escalation");
        let none = AgreedOutcome::NoDecision { achieved: Ppm::saturating(400_000) };
        assert_eq!(outcome(&none), "no decision (best support 40.0%)");
        for text in [outcome(&decided), outcome(&escalated), outcome(&flagged), outcome(&none)] {
            assert!(!text.contains('{') && !text.contains("Id("), "{text}");
        }
    }

    #[test]
    fn names_of_unit_variants_read_as_words() {
        assert_eq!(camel("VoteCollection"), "vote collection");
        assert_eq!(timer(TimerKind::Propose, 2), "propose timeout round 2");
        assert_eq!(rejection(&Rejection::BadSignature), "bad signature");
    }

    #[test]
    fn values_and_ids() {
        let v = ValueId([0xab; 32]);
        assert_eq!(value(Some(v)), "value abababababababab");
        assert_eq!(value(None), "no value");
        assert_eq!(value_id(&v).len(), 64);
        assert_eq!(mode(ProposalMode::Fallback), "fallback");
    }
}
