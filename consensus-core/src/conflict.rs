//! Tallying and conflict resolution (design §4.1–4.2 `ConflictResolutionSystem`).
//!
//! A [`Tally`] holds the counted votes of one session with their effective weights. From it,
//! [`analyze`] classifies the vote distribution and [`resolve_conflict`] applies the design's
//! resolution of each class:
//!
//! | class | when | resolution |
//! |---|---|---|
//! | `ByzantineInfluence` | the detector flagged voters | exclude them and re-tally; too few left: human review |
//! | `InsufficientVotes` | fewer votes than the participation quorum, or too many abstentions for any candidate to reach the threshold | request more information |
//! | `SimpleMajority` | the best candidate reaches the threshold | consensus |
//! | `Tie` | the two best candidates have equal vote counts | weighted scores among the tied candidates; still tied, or each side carried by `f` or fewer votes: human review |
//! | `StrongMinority` | some dissenting vote has confidence above 0.9 | no candidate with `f + 1` strong dissenters (the design: one dissenter): majority rule with dissent; otherwise evidence analysis (majority / minority / inconclusive: expert review) |
//! | `NoAgreement` | none of the above | no decision |
//!
//! **Validity against Byzantine minorities** (docs/protocol.md V9–V12): with at most `f`
//! Byzantine voters (`f = f_max` of the active committee, [`Context::max_faulty`]), a decided
//! candidate must have at least `f + 1` supporting votes in the tally, so at least one honest
//! supporter, and a below-threshold resolution is never carried by `f` or fewer votes: a tie
//! is broken only between candidates with `f + 1` supporters each, a minority overrules only
//! with `f + 1` strong dissenters of its own, and any resolution whose candidate has `f` or
//! fewer supporters becomes no decision ([`resolve_conflict`]'s final guard).
//!
//! All quantities are integers, and candidates are ranked by a total order (support, then
//! weight, then weighted evidence, then the smaller id), so the result never depends on the
//! order in which votes arrived.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{AgreementBasis, EngineConfig};
use crate::fixed::{Ppm, PPM_ONE};
use crate::types::{AgentId, CandidateId, EscalationAction};

/// One counted vote, reduced to what tallying needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TalliedVote {
    /// The voter.
    pub agent: AgentId,
    /// The candidate it supports: an `Accept` at or above its confidence threshold.
    pub support: Option<CandidateId>,
    /// The accept score (zero when not supporting).
    pub score: Ppm,
    /// The vote's confidence.
    pub confidence: Ppm,
    /// Design §4.2 effective weight in millionths: base × accuracy × (0.5 + 0.5 × confidence).
    pub weight_micro: u64,
    /// Flagged by the Byzantine detector in this session.
    pub flagged: bool,
}

impl TalliedVote {
    /// Design §4.2 `resolve_tie` score of this vote: score × weight × confidence, in
    /// millionths of a weight unit, times 10¹² (kept exact in `u128`).
    pub fn evidence(&self) -> u128 {
        u128::from(self.score.raw()) * u128::from(self.confidence.raw()) * u128::from(self.weight_micro)
    }
}

/// Support for one candidate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateTally {
    /// The candidate.
    pub candidate: CandidateId,
    /// Supporting votes.
    pub count: u32,
    /// Supporting effective weight, in millionths.
    pub weight_micro: u64,
    /// Σ score × confidence × weight over supporters (see [`TalliedVote::evidence`]).
    pub evidence: u128,
    /// Σ confidence over supporters, in ppm.
    pub confidence_sum: u64,
}

impl CandidateTally {
    /// [`CandidateTally::evidence`] scaled to millionths of a weight unit.
    pub fn weighted_score_micro(&self) -> u64 {
        let one = u128::from(PPM_ONE);
        u64::try_from(self.evidence / (one * one)).unwrap_or(u64::MAX)
    }

    /// Mean confidence of the supporters.
    pub fn average_confidence(&self) -> Ppm {
        if self.count == 0 {
            return Ppm::ZERO;
        }
        Ppm::saturating(self.confidence_sum / u64::from(self.count))
    }
}

/// The counted votes of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    votes: Vec<TalliedVote>,
    basis: AgreementBasis,
}

impl Tally {
    /// A tally of `votes` (at most one per agent), sorted by agent so that order never matters.
    pub fn new(mut votes: Vec<TalliedVote>, basis: AgreementBasis) -> Tally {
        votes.sort_by_key(|v| v.agent);
        debug_assert!(votes.windows(2).all(|w| w[0].agent < w[1].agent), "one vote per agent");
        Tally { votes, basis }
    }

    /// The votes, ascending by agent.
    pub fn votes(&self) -> &[TalliedVote] {
        &self.votes
    }

    /// The same tally without flagged voters (seed: "filter out Byzantine agent votes").
    pub fn honest(&self) -> Tally {
        Tally { votes: self.votes.iter().copied().filter(|v| !v.flagged).collect(), basis: self.basis }
    }

    /// Flagged voters, ascending.
    pub fn flagged(&self) -> Vec<AgentId> {
        self.votes.iter().filter(|v| v.flagged).map(|v| v.agent).collect()
    }

    /// Votes counted (accepts, rejects and abstentions).
    pub fn counted(&self) -> u32 {
        u32::try_from(self.votes.len()).unwrap_or(u32::MAX)
    }

    /// Total effective weight counted, in millionths.
    pub fn counted_weight_micro(&self) -> u64 {
        self.votes.iter().map(|v| v.weight_micro).fold(0, u64::saturating_add)
    }

    /// Per-candidate support, best first (support on the configured basis, then weight, then
    /// evidence, then the smaller id).
    pub fn ranking(&self) -> Vec<CandidateTally> {
        let mut per: BTreeMap<CandidateId, CandidateTally> = BTreeMap::new();
        for v in &self.votes {
            let Some(c) = v.support else { continue };
            let t = per.entry(c).or_insert_with(|| CandidateTally { candidate: c, ..CandidateTally::default() });
            t.count += 1;
            t.weight_micro = t.weight_micro.saturating_add(v.weight_micro);
            t.evidence = t.evidence.saturating_add(v.evidence());
            t.confidence_sum += u64::from(v.confidence.raw());
        }
        let mut ranked: Vec<CandidateTally> = per.into_values().collect();
        match self.basis {
            AgreementBasis::Count => {
                ranked.sort_by_key(|t| (Reverse(t.count), Reverse(t.weight_micro), Reverse(t.evidence), t.candidate))
            }
            AgreementBasis::Weight => {
                ranked.sort_by_key(|t| (Reverse(t.weight_micro), Reverse(t.count), Reverse(t.evidence), t.candidate))
            }
        }
        ranked
    }

    /// The share of counted votes (or weight) supporting `t`.
    pub fn agreement(&self, t: &CandidateTally) -> Ppm {
        let (part, whole) = self.support_of(t);
        Ppm::ratio(part, whole)
    }

    /// `(support, total)` on the configured basis.
    pub fn support_of(&self, t: &CandidateTally) -> (u128, u128) {
        match self.basis {
            AgreementBasis::Count => (u128::from(t.count), u128::from(self.counted())),
            AgreementBasis::Weight => (u128::from(t.weight_micro), u128::from(self.counted_weight_micro())),
        }
    }
}

/// Design §4.2 `ConflictType`, plus `NoAgreement` for distributions none of them describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictType {
    /// The best candidate reaches the threshold.
    SimpleMajority,
    /// The two best candidates have equal vote counts.
    Tie,
    /// A dissenting vote has very high confidence.
    StrongMinority,
    /// Too few votes, or too many abstentions.
    InsufficientVotes,
    /// The detector flagged voters.
    ByzantineInfluence,
    /// A plurality below the threshold with no strong dissent.
    NoAgreement,
}

/// Design §4.2 `EvidenceRecommendation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceRecommendation {
    /// The majority's weighted evidence is stronger by the margin.
    SupportMajority,
    /// The minority's weighted evidence is stronger by the margin.
    SupportMinority,
    /// Neither side is ahead by the margin.
    Inconclusive,
}

/// Design §4.2 `ConflictResolution`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictResolution {
    /// The best candidate reached the threshold.
    Consensus {
        /// Chosen.
        chosen: CandidateId,
    },
    /// A count tie broken by weighted scores.
    WeightedConsensus {
        /// Chosen.
        chosen: CandidateId,
        /// Its weighted score, in millionths.
        weighted_score_micro: u64,
    },
    /// Strong dissent overruled by the evidence.
    EvidenceBasedConsensus {
        /// Chosen (the majority's candidate).
        chosen: CandidateId,
        /// The majority's share of the compared evidence.
        evidence_strength: Ppm,
        /// Strong dissenting votes overruled.
        overruled_minority: u32,
    },
    /// The strong minority's evidence won.
    MinorityOverrule {
        /// Chosen (the minority's candidate).
        chosen: CandidateId,
        /// The minority's share of the compared evidence.
        evidence_strength: Ppm,
    },
    /// A single strong dissenter; majority rule kept.
    MajorityRuleWithDissent {
        /// Chosen (the plurality's candidate).
        chosen: CandidateId,
        /// Strong dissenters.
        dissenting_agents: u32,
        /// Their highest confidence.
        dissent_confidence: Ppm,
    },
    /// Handed to people.
    Escalation {
        /// Why.
        reason: String,
        /// What to do.
        action: EscalationAction,
    },
    /// No candidate can be chosen.
    NoAgreement {
        /// The best candidate, if any vote supported one.
        best: Option<CandidateId>,
        /// Its support.
        achieved: Ppm,
    },
}

/// What [`analyze`] needs besides the tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// Honest votes needed before anything is decided: the BFT quorum of the active committee.
    pub participation_quorum: u32,
    /// `f`: the Byzantine voters the committee tolerates (`f_max` of the active committee). A
    /// decided candidate needs `f + 1` supporting votes, and no resolution below the threshold
    /// is carried by `f` or fewer votes.
    pub max_faulty: u32,
}

impl Context {
    /// The context of an active committee of `n` agents: `q = ceil((n + f + 1) / 2)` and
    /// `f = f_max(n)`. An empty committee can decide nothing (the quorum is unreachable).
    pub fn for_committee(n: u64) -> Context {
        let participation_quorum =
            crate::quorum::quorum_for(n).map_or(u32::MAX, |q| u32::try_from(q).unwrap_or(u32::MAX));
        let max_faulty = u32::try_from(crate::quorum::f_max(n)).unwrap_or(u32::MAX);
        Context { participation_quorum, max_faulty }
    }

    /// `f + 1`: the supporting votes a decided candidate needs (at least one honest).
    pub fn min_support(&self) -> u32 {
        self.max_faulty.saturating_add(1)
    }
}

/// Design §4.2 `analyze_vote_distribution`.
pub fn analyze(tally: &Tally, ctx: Context, config: &EngineConfig) -> ConflictType {
    if tally.votes.iter().any(|v| v.flagged) {
        return ConflictType::ByzantineInfluence;
    }
    let ranked = tally.ranking();
    let accepting: u32 = ranked.iter().map(|t| t.count).sum();
    // Even if every accepting vote agreed, could the threshold be reached?
    let reachable = config.threshold.reached(u128::from(accepting), u128::from(tally.counted()));
    if tally.counted() < ctx.participation_quorum || !reachable {
        return ConflictType::InsufficientVotes;
    }
    let Some(best) = ranked.first() else { return ConflictType::InsufficientVotes };
    let (part, whole) = tally.support_of(best);
    if config.threshold.reached(part, whole) {
        return ConflictType::SimpleMajority;
    }
    if ranked.get(1).is_some_and(|second| second.count == best.count) {
        return ConflictType::Tie;
    }
    if !strong_dissent(tally, best.candidate, config).is_empty() {
        return ConflictType::StrongMinority;
    }
    ConflictType::NoAgreement
}

/// What the validity guards of docs/protocol.md V10–V13 did in one resolution: `None` where a
/// guard had nothing to decide, `Some(true)` where the resolution passed it, `Some(false)`
/// where the guard changed it. Observed (protocol coverage); nothing decides on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guards {
    /// V9–V10: a resolution deciding a candidate kept it (`f + 1` supporters) or became no
    /// decision.
    pub support: Option<bool>,
    /// V11: a tie went to the weighted tie-break (top count ≥ `f + 1`) or to human review.
    pub tie: Option<bool>,
    /// V12: strong dissent made a one-candidate minority of ≥ max(2, `f + 1`) for evidence
    /// analysis, or was only recorded (majority rule with dissent).
    pub minority: Option<bool>,
    /// V13: the flagged voters were excluded and the rest re-tallied, or too few remained.
    pub retally: Option<bool>,
}

/// Design §4.2 `resolve_conflict`: the class of the distribution and its resolution.
///
/// Final guard (docs/protocol.md V10): a resolution that would decide a candidate with fewer
/// than `f + 1` supporting votes in `tally` (all of which could be Byzantine) is no decision.
pub fn resolve_conflict(tally: &Tally, ctx: Context, config: &EngineConfig) -> (ConflictType, ConflictResolution) {
    resolve_conflict_guarded(tally, ctx, config, &mut Guards::default())
}

/// [`resolve_conflict`], noting in `guards` what V10–V13 did.
pub fn resolve_conflict_guarded(
    tally: &Tally,
    ctx: Context,
    config: &EngineConfig,
    guards: &mut Guards,
) -> (ConflictType, ConflictResolution) {
    let kind = analyze(tally, ctx, config);
    let ranked = tally.ranking();
    let resolution = match (kind, ranked.first()) {
        (ConflictType::ByzantineInfluence, _) => resolve_byzantine_influence(tally, ctx, config, guards),
        (ConflictType::InsufficientVotes, _) | (_, None) => insufficient(tally, ctx),
        (ConflictType::SimpleMajority, Some(best)) => ConflictResolution::Consensus { chosen: best.candidate },
        (ConflictType::Tie, _) => resolve_tie(&ranked, ctx, guards),
        (ConflictType::StrongMinority, Some(best)) => {
            resolve_strong_minority(tally, best, &ranked, ctx, config, guards)
        }
        (ConflictType::NoAgreement, Some(best)) => {
            ConflictResolution::NoAgreement { best: Some(best.candidate), achieved: tally.agreement(best) }
        }
    };
    (kind, require_support(tally, &ranked, resolution, ctx, guards))
}

/// The candidate a resolution decides, if it decides one.
pub fn chosen(resolution: &ConflictResolution) -> Option<CandidateId> {
    match resolution {
        ConflictResolution::Consensus { chosen }
        | ConflictResolution::WeightedConsensus { chosen, .. }
        | ConflictResolution::EvidenceBasedConsensus { chosen, .. }
        | ConflictResolution::MinorityOverrule { chosen, .. }
        | ConflictResolution::MajorityRuleWithDissent { chosen, .. } => Some(*chosen),
        ConflictResolution::Escalation { .. } | ConflictResolution::NoAgreement { .. } => None,
    }
}

/// V10: a decided candidate has at least `f + 1` supporting votes among the counted, unflagged
/// votes (the Byzantine filter's re-tally already applied this guard to its own tally).
fn require_support(
    tally: &Tally,
    ranked: &[CandidateTally],
    resolution: ConflictResolution,
    ctx: Context,
    guards: &mut Guards,
) -> ConflictResolution {
    let Some(candidate) = chosen(&resolution) else { return resolution };
    let honest = tally.honest();
    let honest_ranked;
    let ranked = if honest.counted() == tally.counted() {
        ranked
    } else {
        honest_ranked = honest.ranking();
        &honest_ranked
    };
    let support = ranked.iter().find(|t| t.candidate == candidate);
    guards.support = Some(support.is_some_and(|t| t.count >= ctx.min_support()));
    match support {
        Some(t) if t.count >= ctx.min_support() => resolution,
        _ => ConflictResolution::NoAgreement {
            best: Some(candidate),
            achieved: support.map_or(Ppm::ZERO, |t| honest.agreement(t)),
        },
    }
}

/// Design §4.2 `resolve_byzantine_influence`: exclude flagged voters and re-tally. The flagged
/// voters took part (their votes fill the vote set's quorum) but carry no agreement, so the
/// re-tally needs `q − flagged` counted votes, never fewer than `f + 1` (V13): with at most
/// `f` flags a vote set of `q` can always be re-tallied. When fewer remain, the design
/// escalates Byzantine influence to a human.
fn resolve_byzantine_influence(
    tally: &Tally,
    ctx: Context,
    config: &EngineConfig,
    guards: &mut Guards,
) -> ConflictResolution {
    let honest = tally.honest();
    debug_assert!(honest.votes.iter().all(|v| !v.flagged));
    let flagged = tally.counted() - honest.counted();
    let needed = ctx.participation_quorum.saturating_sub(flagged).max(ctx.min_support());
    let (kind, resolution) =
        resolve_conflict_guarded(&honest, Context { participation_quorum: needed, ..ctx }, config, guards);
    guards.retally = Some(kind != ConflictType::InsufficientVotes);
    if kind == ConflictType::InsufficientVotes {
        return ConflictResolution::Escalation {
            reason: format!(
                "{flagged} Byzantine voter(s) excluded; {} honest vote(s) remain, {needed} needed",
                honest.counted()
            ),
            action: EscalationAction::HumanReview,
        };
    }
    resolution
}

fn insufficient(tally: &Tally, ctx: Context) -> ConflictResolution {
    let abstaining = tally.votes.iter().filter(|v| v.support.is_none()).count();
    ConflictResolution::Escalation {
        reason: format!(
            "{} vote(s) counted ({} needed), {abstaining} without a supported candidate",
            tally.counted(),
            ctx.participation_quorum
        ),
        action: EscalationAction::RequestMoreInformation,
    }
}

/// Design §4.2 `resolve_tie`: the highest Σ score × weight × confidence wins; a tie there too,
/// or no positive score, goes to human review.
///
/// V11: only the candidates tied at the top count compete (a candidate with fewer votes never
/// wins a tie-break on evidence), and when the tied count is `f` or fewer, each side could be
/// Byzantine votes alone, so the tie goes to human review.
fn resolve_tie(ranked: &[CandidateTally], ctx: Context, guards: &mut Guards) -> ConflictResolution {
    let top = ranked.first().map_or(0, |t| t.count);
    guards.tie = Some(top >= ctx.min_support());
    if top < ctx.min_support() {
        return ConflictResolution::Escalation {
            reason: format!("Tie between candidates with {top} supporting vote(s) each; {} needed", ctx.min_support()),
            action: EscalationAction::HumanReview,
        };
    }
    let mut by_evidence: Vec<&CandidateTally> = ranked.iter().filter(|t| t.count == top).collect();
    by_evidence.sort_by_key(|t| (Reverse(t.evidence), t.candidate));
    match by_evidence.as_slice() {
        [first, second, ..] if first.evidence == second.evidence => ConflictResolution::Escalation {
            reason: "Weighted voting failed to break tie".to_owned(),
            action: EscalationAction::HumanReview,
        },
        [first, ..] if first.evidence > 0 => ConflictResolution::WeightedConsensus {
            chosen: first.candidate,
            weighted_score_micro: first.weighted_score_micro(),
        },
        _ => ConflictResolution::Escalation {
            reason: "Weighted voting failed to break tie".to_owned(),
            action: EscalationAction::HumanReview,
        },
    }
}

/// Dissenting votes (supporting another candidate than `majority`) above the strong-minority
/// confidence, ascending by agent.
fn strong_dissent(tally: &Tally, majority: CandidateId, config: &EngineConfig) -> Vec<TalliedVote> {
    tally
        .votes
        .iter()
        .filter(|v| v.support.is_some_and(|c| c != majority) && v.confidence > config.strong_minority_confidence)
        .copied()
        .collect()
}

/// Design §4.2 `resolve_strong_minority`.
///
/// V12: a strong minority is the strong dissenting votes (confidence above 0.9) for **one**
/// candidate, and it needs `f + 1` of them (at least two: the design's "two or more") to
/// bring its candidate to evidence analysis, since `f` Byzantine agents can always cast `f`
/// confident votes. With no such candidate the dissent is recorded and the majority rule
/// holds (the design's single dissenter).
fn resolve_strong_minority(
    tally: &Tally,
    majority: &CandidateTally,
    ranked: &[CandidateTally],
    ctx: Context,
    config: &EngineConfig,
    guards: &mut Guards,
) -> ConflictResolution {
    let dissent = strong_dissent(tally, majority.candidate, config);
    let dissenting_agents = u32::try_from(dissent.len()).unwrap_or(u32::MAX);
    let needed = ctx.min_support().max(2) as usize;
    let strong_for = |c: CandidateId| dissent.iter().filter(|v| v.support == Some(c)).count();
    // The minority's choice: among candidates with enough strong dissenters, the one with the
    // most evidence overall (ties: the smaller id).
    let minority =
        ranked.iter().filter(|t| strong_for(t.candidate) >= needed).max_by_key(|t| (t.evidence, Reverse(t.candidate)));
    guards.minority = Some(minority.is_some());
    let Some(minority) = minority else {
        return ConflictResolution::MajorityRuleWithDissent {
            chosen: majority.candidate,
            dissenting_agents,
            dissent_confidence: dissent.iter().map(|v| v.confidence).max().unwrap_or(Ppm::ZERO),
        };
    };
    let (recommendation, strength) = analyze_evidence(majority.evidence, minority.evidence, config.evidence_margin);
    match recommendation {
        EvidenceRecommendation::SupportMajority => ConflictResolution::EvidenceBasedConsensus {
            chosen: majority.candidate,
            evidence_strength: strength,
            overruled_minority: dissenting_agents,
        },
        EvidenceRecommendation::SupportMinority => {
            ConflictResolution::MinorityOverrule { chosen: minority.candidate, evidence_strength: strength }
        }
        EvidenceRecommendation::Inconclusive => ConflictResolution::Escalation {
            reason: "Evidence analysis inconclusive with strong minority dissent".to_owned(),
            action: EscalationAction::ExpertReview,
        },
    }
}

/// Design §4.2 `analyze_conflicting_evidence`: one side wins when its weighted evidence exceeds
/// the other's by the relative `margin`. Returns the recommendation and the winning side's
/// share of the total evidence (one half when inconclusive).
pub fn analyze_evidence(majority: u128, minority: u128, margin: Ppm) -> (EvidenceRecommendation, Ppm) {
    let scale = u128::from(PPM_ONE) + u128::from(margin.raw());
    let one = u128::from(PPM_ONE);
    let total = majority.saturating_add(minority);
    if majority.saturating_mul(one) > minority.saturating_mul(scale) {
        (EvidenceRecommendation::SupportMajority, Ppm::ratio(majority, total))
    } else if minority.saturating_mul(one) > majority.saturating_mul(scale) {
        (EvidenceRecommendation::SupportMinority, Ppm::ratio(minority, total))
    } else {
        (EvidenceRecommendation::Inconclusive, Ppm::HALF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(x: f64) -> Ppm {
        Ppm::from_f64(x).unwrap_or_else(|| panic!("{x} out of range"))
    }

    /// (agent, supported candidate, score, confidence, weight, flagged)
    type Row = (u32, Option<u32>, f64, f64, u64, bool);

    fn tally(rows: &[Row]) -> Tally {
        let votes = rows
            .iter()
            .map(|&(agent, support, score, confidence, weight_micro, flagged)| TalliedVote {
                agent: AgentId(agent),
                support: support.map(CandidateId),
                score: ppm(score),
                confidence: ppm(confidence),
                weight_micro,
                flagged,
            })
            .collect();
        Tally::new(votes, AgreementBasis::Count)
    }

    const CTX: Context = Context { participation_quorum: 4, max_faulty: 1 };
    const W: u64 = 1_000_000;

    #[test]
    fn classification_table() {
        let config = EngineConfig::default();
        let cases: Vec<(&str, Tally, ConflictType)> = vec![
            (
                "4 of 5 agree",
                tally(&[
                    (0, Some(0), 0.9, 0.9, W, false),
                    (1, Some(0), 0.9, 0.9, W, false),
                    (2, Some(0), 0.9, 0.9, W, false),
                    (3, Some(0), 0.9, 0.9, W, false),
                    (4, Some(1), 0.9, 0.9, W, false),
                ]),
                ConflictType::SimpleMajority,
            ),
            (
                "2-2 split",
                tally(&[
                    (0, Some(0), 0.9, 0.8, W, false),
                    (1, Some(0), 0.9, 0.8, W, false),
                    (2, Some(1), 0.9, 0.8, W, false),
                    (3, Some(1), 0.9, 0.8, W, false),
                ]),
                ConflictType::Tie,
            ),
            (
                "2-1-1 with a confident dissenter",
                tally(&[
                    (0, Some(0), 0.9, 0.8, W, false),
                    (1, Some(0), 0.9, 0.8, W, false),
                    (2, Some(1), 0.9, 0.95, W, false),
                    (3, Some(2), 0.9, 0.8, W, false),
                ]),
                ConflictType::StrongMinority,
            ),
            (
                "2-1-1 without strong dissent",
                tally(&[
                    (0, Some(0), 0.9, 0.8, W, false),
                    (1, Some(0), 0.9, 0.8, W, false),
                    (2, Some(1), 0.9, 0.8, W, false),
                    (3, Some(2), 0.9, 0.8, W, false),
                ]),
                ConflictType::NoAgreement,
            ),
            (
                "only three votes",
                tally(&[
                    (0, Some(0), 0.9, 0.9, W, false),
                    (1, Some(0), 0.9, 0.9, W, false),
                    (2, Some(0), 0.9, 0.9, W, false),
                ]),
                ConflictType::InsufficientVotes,
            ),
            (
                "two abstentions of five",
                tally(&[
                    (0, Some(0), 0.9, 0.9, W, false),
                    (1, Some(0), 0.9, 0.9, W, false),
                    (2, Some(0), 0.9, 0.9, W, false),
                    (3, None, 0.0, 0.5, W, false),
                    (4, None, 0.0, 0.5, W, false),
                ]),
                ConflictType::InsufficientVotes,
            ),
            (
                "a flagged voter",
                tally(&[
                    (0, Some(0), 0.9, 0.9, W, false),
                    (1, Some(0), 0.9, 0.9, W, false),
                    (2, Some(0), 0.9, 0.9, W, false),
                    (3, Some(0), 0.9, 0.9, W, false),
                    (4, Some(1), 0.9, 0.99, W, true),
                ]),
                ConflictType::ByzantineInfluence,
            ),
        ];
        for (name, t, expected) in cases {
            assert_eq!(analyze(&t, CTX, &config), expected, "{name}");
        }
    }

    #[test]
    fn byzantine_influence_revotes_without_the_flagged() {
        let config = EngineConfig::default();
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (1, Some(0), 0.9, 0.9, W, false),
            (2, Some(0), 0.9, 0.9, W, false),
            (3, Some(0), 0.9, 0.9, W, false),
            (4, Some(1), 0.9, 0.99, W, true),
        ]);
        let (kind, resolution) = resolve_conflict(&t, CTX, &config);
        assert_eq!(kind, ConflictType::ByzantineInfluence);
        assert_eq!(resolution, ConflictResolution::Consensus { chosen: CandidateId(0) });
        // V13: a vote set of exactly q = 4 with one flagged voter is re-tallied on the three
        // others (q − 1 needed); under the old rule (q unflagged) it escalated, an influence the
        // honest votes alone would not cause.
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (1, Some(0), 0.9, 0.9, W, false),
            (2, Some(0), 0.9, 0.9, W, false),
            (4, Some(1), 0.9, 0.99, W, true),
        ]);
        let (_, resolution) = resolve_conflict(&t, CTX, &config);
        assert_eq!(resolution, ConflictResolution::Consensus { chosen: CandidateId(0) });
        // Three votes, one flagged: the vote set itself misses the quorum; two remain, three
        // needed: human review.
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (1, Some(0), 0.9, 0.9, W, false),
            (4, Some(1), 0.9, 0.99, W, true),
        ]);
        let (_, resolution) = resolve_conflict(&t, CTX, &config);
        match &resolution {
            ConflictResolution::Escalation { action: EscalationAction::HumanReview, reason } => {
                assert!(reason.contains("2 honest vote(s) remain, 3 needed"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Never fewer than f + 1: with f = 1, q = 3 and 2 flagged, q − flagged = 1 vote could be
        // Byzantine, so 2 are needed and 1 remains.
        let ctx = Context { participation_quorum: 3, max_faulty: 1 };
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (3, Some(1), 0.9, 0.9, W, true),
            (4, Some(1), 0.9, 0.99, W, true),
        ]);
        let (_, resolution) = resolve_conflict(&t, ctx, &config);
        assert!(matches!(resolution, ConflictResolution::Escalation { .. }), "{resolution:?}");
    }

    #[test]
    fn tie_is_broken_by_weighted_score_or_escalated() {
        let config = EngineConfig::default();
        let ctx = Context { participation_quorum: 2, max_faulty: 0 };
        // Design §7.1: analyzer (1.2, confidence 0.9, score 0.8) against retriever (1.0, 0.8, 0.9).
        let analyzer_w = 1_200_000 * 950 / 1_000; // base × (0.5 + 0.5 × 0.9)
        let retriever_w = 1_000_000 * 900 / 1_000;
        let t = tally(&[(0, Some(0), 0.8, 0.9, analyzer_w, false), (1, Some(1), 0.9, 0.8, retriever_w, false)]);
        let (kind, resolution) = resolve_conflict(&t, ctx, &config);
        assert_eq!(kind, ConflictType::Tie);
        assert!(
            matches!(resolution, ConflictResolution::WeightedConsensus { chosen: CandidateId(0), .. }),
            "{resolution:?}"
        );
        // Identical weighted scores: escalate.
        let t = tally(&[(0, Some(0), 0.8, 0.9, W, false), (1, Some(1), 0.8, 0.9, W, false)]);
        let (_, resolution) = resolve_conflict(&t, ctx, &config);
        assert!(
            matches!(resolution, ConflictResolution::Escalation { action: EscalationAction::HumanReview, .. }),
            "{resolution:?}"
        );
        // Zero scores: nothing to weigh, escalate.
        let t = tally(&[(0, Some(0), 0.0, 0.9, W, false), (1, Some(1), 0.0, 0.9, W, false)]);
        let (_, resolution) = resolve_conflict(&t, ctx, &config);
        assert!(matches!(resolution, ConflictResolution::Escalation { .. }), "{resolution:?}");
    }

    #[test]
    fn strong_minority_resolutions() {
        let config = EngineConfig::default();
        // One strong dissenter: majority rule with dissent.
        let t = tally(&[
            (0, Some(0), 0.9, 0.8, W, false),
            (1, Some(0), 0.9, 0.8, W, false),
            (2, Some(1), 0.9, 0.95, W, false),
            (3, Some(2), 0.9, 0.8, W, false),
        ]);
        let (_, r) = resolve_conflict(&t, CTX, &config);
        assert_eq!(
            r,
            ConflictResolution::MajorityRuleWithDissent {
                chosen: CandidateId(0),
                dissenting_agents: 1,
                dissent_confidence: ppm(0.95)
            }
        );
        // Two strong dissenters for one candidate, weak minority evidence: the evidence supports
        // the majority.
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (1, Some(0), 0.9, 0.9, W, false),
            (2, Some(0), 0.9, 0.9, W, false),
            (3, Some(1), 0.3, 0.95, W, false),
            (4, Some(1), 0.3, 0.95, W, false),
        ]);
        let ctx5 = Context { participation_quorum: 4, max_faulty: 1 };
        let (kind, r) = resolve_conflict(&t, ctx5, &config);
        assert_eq!(kind, ConflictType::StrongMinority);
        assert!(
            matches!(
                r,
                ConflictResolution::EvidenceBasedConsensus { chosen: CandidateId(0), overruled_minority: 2, .. }
            ),
            "{r:?}"
        );
        // Two strong dissenters split over two candidates (V12): neither candidate has f + 1 = 2
        // strong dissenters, so there is no minority to weigh; the dissent is recorded.
        let t = tally(&[
            (0, Some(0), 0.9, 0.9, W, false),
            (1, Some(0), 0.9, 0.9, W, false),
            (2, Some(0), 0.9, 0.9, W, false),
            (3, Some(1), 0.99, 0.99, W, false),
            (4, Some(2), 0.99, 0.99, W, false),
        ]);
        let (_, r) = resolve_conflict(&t, ctx5, &config);
        assert!(
            matches!(
                r,
                ConflictResolution::MajorityRuleWithDissent { chosen: CandidateId(0), dissenting_agents: 2, .. }
            ),
            "{r:?}"
        );
        // Two strong dissenters on one candidate, weak majority scores: the minority overrules.
        let t = tally(&[
            (0, Some(0), 0.2, 0.5, W, false),
            (1, Some(0), 0.2, 0.5, W, false),
            (2, Some(0), 0.2, 0.5, W, false),
            (3, Some(1), 0.95, 0.98, W, false),
            (4, Some(1), 0.95, 0.98, W, false),
        ]);
        let (_, r) = resolve_conflict(&t, ctx5, &config);
        assert!(matches!(r, ConflictResolution::MinorityOverrule { chosen: CandidateId(1), .. }), "{r:?}");
        // Balanced evidence: expert review.
        let t = tally(&[
            (0, Some(0), 0.6, 0.95, W, false),
            (1, Some(0), 0.6, 0.95, W, false),
            (2, Some(0), 0.6, 0.95, W, false),
            (3, Some(1), 0.9, 0.95, W, false),
            (4, Some(1), 0.9, 0.95, W, false),
        ]);
        let (_, r) = resolve_conflict(&t, ctx5, &config);
        assert!(matches!(r, ConflictResolution::Escalation { action: EscalationAction::ExpertReview, .. }), "{r:?}");
    }

    /// Issue 9's counterexample: 7 agents (f = 2), a proposal with q = 5 votes, 3 honest votes
    /// for candidate 0 (below 66%) and 2 colluders for candidate 1 with maximal score and
    /// confidence. The design's evidence analysis lets the colluders overrule with agreement
    /// 0.4; under V12 two strong dissenters are f, not f + 1, so the majority rule holds.
    #[test]
    fn f_colluders_cannot_overrule_the_honest_majority() {
        let config = EngineConfig::default();
        let ctx7 = Context { participation_quorum: 5, max_faulty: 2 };
        let t = tally(&[
            (0, Some(0), 0.6, 0.85, W, false),
            (1, Some(0), 0.6, 0.85, W, false),
            (2, Some(0), 0.6, 0.85, W, false),
            (5, Some(1), 1.0, 1.0, W, false),
            (6, Some(1), 1.0, 1.0, W, false),
        ]);
        let (kind, r) = resolve_conflict(&t, ctx7, &config);
        assert_eq!(kind, ConflictType::StrongMinority);
        assert!(
            matches!(
                r,
                ConflictResolution::MajorityRuleWithDissent { chosen: CandidateId(0), dissenting_agents: 2, .. }
            ),
            "{r:?}"
        );
        // The design's rule (f = 1 here, so two dissenters are f + 1) overrules: the guard is
        // what changed the outcome, not the evidence.
        let (_, r) = resolve_conflict(&t, Context { participation_quorum: 5, max_faulty: 1 }, &config);
        assert!(matches!(r, ConflictResolution::MinorityOverrule { chosen: CandidateId(1), .. }), "{r:?}");
        // Three strong dissenters (f + 1) with the stronger evidence do overrule: one is honest.
        let t = tally(&[
            (0, Some(0), 0.6, 0.85, W, false),
            (1, Some(0), 0.6, 0.85, W, false),
            (2, Some(0), 0.6, 0.85, W, false),
            (3, Some(0), 0.6, 0.85, W, false),
            (4, Some(1), 1.0, 0.95, W, false),
            (5, Some(1), 1.0, 1.0, W, false),
            (6, Some(1), 1.0, 1.0, W, false),
        ]);
        let (_, r) = resolve_conflict(&t, ctx7, &config);
        assert!(matches!(r, ConflictResolution::MinorityOverrule { chosen: CandidateId(1), .. }), "{r:?}");
    }

    #[test]
    fn ties_and_pluralities_of_f_votes_decide_nothing() {
        let config = EngineConfig::default();
        let ctx7 = Context { participation_quorum: 5, max_faulty: 2 };
        // 2-2-1-1-1 (f = 2): each tied side could be the two Byzantine agents alone.
        let t = tally(&[
            (0, Some(0), 0.9, 0.8, W, false),
            (1, Some(0), 0.9, 0.8, W, false),
            (2, Some(1), 0.9, 0.8, W, false),
            (3, Some(1), 0.9, 0.8, W, false),
            (4, Some(2), 0.9, 0.8, W, false),
            (5, Some(3), 0.9, 0.8, W, false),
            (6, Some(4), 0.9, 0.8, W, false),
        ]);
        let (kind, r) = resolve_conflict(&t, ctx7, &config);
        assert_eq!(kind, ConflictType::Tie);
        assert!(matches!(r, ConflictResolution::Escalation { action: EscalationAction::HumanReview, .. }), "{r:?}");
        // A plurality of 2 (= f) with one strong dissenter: majority rule would be carried by f
        // votes, so no decision.
        let t = tally(&[
            (0, Some(0), 0.9, 0.8, W, false),
            (1, Some(0), 0.9, 0.8, W, false),
            (2, Some(1), 0.9, 0.95, W, false),
            (3, Some(2), 0.9, 0.8, W, false),
            (4, Some(3), 0.9, 0.8, W, false),
            (5, None, 0.0, 0.5, W, false),
            (6, None, 0.0, 0.5, W, false),
        ]);
        let (kind, r) = resolve_conflict(&t, ctx7, &config);
        // Five of seven accept: the threshold is reachable, so this is classified, then guarded.
        assert_eq!(kind, ConflictType::StrongMinority);
        assert!(matches!(r, ConflictResolution::NoAgreement { best: Some(CandidateId(0)), .. }), "{r:?}");
        // A tie-break is between the tied candidates only: candidate 2 (one vote, most evidence)
        // never wins a 2-2 tie.
        let ctx5 = Context { participation_quorum: 4, max_faulty: 1 };
        let t = tally(&[
            (0, Some(0), 0.5, 0.8, W, false),
            (1, Some(0), 0.5, 0.8, W, false),
            (2, Some(1), 0.6, 0.8, W, false),
            (3, Some(1), 0.6, 0.8, W, false),
            (4, Some(2), 1.0, 1.0, 5 * W, false),
        ]);
        let (kind, r) = resolve_conflict(&t, ctx5, &config);
        assert_eq!(kind, ConflictType::Tie);
        assert!(matches!(r, ConflictResolution::WeightedConsensus { chosen: CandidateId(1), .. }), "{r:?}");
    }

    /// Weight-based agreement: two heavy votes of seven can reach 66% of the weight, but a
    /// decision still needs f + 1 = 3 supporters.
    #[test]
    fn a_weighted_threshold_needs_f_plus_one_supporters() {
        let config = EngineConfig { agreement_basis: AgreementBasis::Weight, ..EngineConfig::default() };
        let ctx7 = Context { participation_quorum: 5, max_faulty: 2 };
        let mut rows: Vec<TalliedVote> = (0..5)
            .map(|a| TalliedVote {
                agent: AgentId(a),
                support: Some(CandidateId(u32::from(a >= 2))),
                score: ppm(0.9),
                confidence: ppm(0.9),
                weight_micro: if a < 2 { 10 * W } else { W },
                flagged: false,
            })
            .collect();
        rows.truncate(5);
        let t = Tally::new(rows, AgreementBasis::Weight);
        let (kind, r) = resolve_conflict(&t, ctx7, &config);
        assert_eq!(kind, ConflictType::SimpleMajority);
        assert!(matches!(r, ConflictResolution::NoAgreement { best: Some(CandidateId(0)), .. }), "{r:?}");
    }

    #[test]
    fn context_for_committees() {
        assert_eq!(Context::for_committee(4), Context { participation_quorum: 3, max_faulty: 1 });
        assert_eq!(Context::for_committee(7), Context { participation_quorum: 5, max_faulty: 2 });
        assert_eq!(Context::for_committee(31), Context { participation_quorum: 21, max_faulty: 10 });
        assert_eq!(Context::for_committee(0).participation_quorum, u32::MAX);
    }

    proptest::proptest! {
        /// V10–V12 on arbitrary tallies: whatever the votes, a decided candidate has at least
        /// f + 1 unflagged supporters, a tie-break picks one of the top-tied candidates, and a
        /// minority overrule is carried by f + 1 strong dissenters of its candidate.
        #[test]
        fn every_resolution_is_carried_by_f_plus_one_votes(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.85, 0u32..4), 0u32..=100, 50u32..=100, 1u64..=2_000_000, proptest::bool::weighted(0.1)),
                1..32,
            ),
            weighted in proptest::bool::ANY,
        ) {
            let config = EngineConfig {
                agreement_basis: if weighted { AgreementBasis::Weight } else { AgreementBasis::Count },
                ..EngineConfig::default()
            };
            let votes: Vec<TalliedVote> = rows
                .iter()
                .enumerate()
                .map(|(i, &(support, score, confidence, weight_micro, flagged))| TalliedVote {
                    agent: AgentId(u32::try_from(i).unwrap_or(u32::MAX)),
                    support: support.map(CandidateId),
                    score: Ppm::saturating(u64::from(score) * 10_000),
                    confidence: Ppm::saturating(u64::from(confidence) * 10_000),
                    weight_micro,
                    flagged,
                })
                .collect();
            let n = votes.len() as u64;
            let ctx = Context::for_committee(n);
            let t = Tally::new(votes, config.agreement_basis);
            let (_, r) = resolve_conflict(&t, ctx, &config);
            let honest = t.honest();
            let ranked = honest.ranking();
            if let Some(c) = chosen(&r) {
                let support = ranked.iter().find(|x| x.candidate == c).map_or(0, |x| x.count);
                proptest::prop_assert!(support > ctx.max_faulty, "{c} has {support} supporters, f = {}: {r:?}", ctx.max_faulty);
            }
            if let ConflictResolution::WeightedConsensus { chosen, .. } = r {
                let top = ranked.first().map_or(0, |x| x.count);
                proptest::prop_assert!(ranked.iter().any(|x| x.candidate == chosen && x.count == top));
            }
            if let ConflictResolution::MinorityOverrule { chosen, .. } = r {
                let strong = honest
                    .votes()
                    .iter()
                    .filter(|v| v.support == Some(chosen) && v.confidence > config.strong_minority_confidence)
                    .count() as u32;
                proptest::prop_assert!(strong > ctx.max_faulty && strong >= 2);
            }
        }
    }

    #[test]
    fn evidence_margin_edges() {
        let margin = ppm(0.1);
        assert_eq!(analyze_evidence(111, 100, margin).0, EvidenceRecommendation::SupportMajority);
        assert_eq!(analyze_evidence(110, 100, margin).0, EvidenceRecommendation::Inconclusive);
        assert_eq!(analyze_evidence(100, 111, margin).0, EvidenceRecommendation::SupportMinority);
        assert_eq!(analyze_evidence(0, 0, margin).0, EvidenceRecommendation::Inconclusive);
    }

    #[test]
    fn ranking_is_independent_of_vote_order() {
        let rows = [
            (3, Some(1), 0.9, 0.8, W, false),
            (0, Some(0), 0.7, 0.9, W, false),
            (2, Some(1), 0.6, 0.7, W, false),
            (1, Some(0), 0.8, 0.85, W, false),
        ];
        let forward = tally(&rows);
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(forward, tally(&reversed));
        assert_eq!(forward.ranking(), tally(&reversed).ranking());
    }
}
