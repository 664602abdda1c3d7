//! Byzantine detection (design §3.2 `detect_malicious_agents(&votes, &history)`).
//!
//! The design configures its detector with `with_detection_threshold(0.3) // 30% deviation from
//! mean` and `with_history_window(100) // Track last 100 votes`. This module keeps that detector
//! ([`DetectorKind::MeanDeviation`]) and adds a robust one ([`DetectorKind::MedianMad`]), so the
//! simulator can measure both: Byzantine agents caught, honest agents wrongly flagged.
//!
//! # Semantics
//!
//! 1. **Points.** Each vote becomes a point `s_a` in `[0, 1]^C` over the session's `C`
//!    candidates. When the vote carries per-candidate scores ([`AgentVote::scores`], which
//!    validation has checked against the vote), the point is those scores (0 for a candidate
//!    the voter did not score): honest agents that split between two close candidates then
//!    stay close to each other, and an agent that scores the worst candidate highest stands
//!    out. Without scores, `s_a[c]` is the score of an `Accept` on candidate `c` and 0 on every
//!    other coordinate; a `Reject` or `Abstain` vote, or a vote on a candidate outside the
//!    session's list, is then the zero vector.
//! 2. **Reference.** `MeanDeviation`: the coordinate-wise mean of all points (integer division,
//!    rounding down). `MedianMad`: the coordinate-wise median (the lower median for an even
//!    number of voters), whose breakdown point is 1/2: fewer than half of the voters cannot
//!    move it off the honest cluster.
//! 3. **Session deviation.** `d_a` is the L-infinity distance between `s_a` and the reference.
//!    These are the values [`Detection::deviations`] reports and the registry appends to each
//!    agent's window.
//! 4. **Windowed statistic.** An agent's past deviations (`registry.get(agent).deviations`;
//!    none for an agent the registry does not know) plus `d_a`, keeping only the most recent
//!    `config.window` values in total.
//!    * `MeanDeviation`: flagged iff the exact mean of those values exceeds `config.threshold`
//!      (`sum > threshold × count`, no rounding).
//!    * `MedianMad`: `cutoff = max(threshold, 3 × 1.4826 × MAD)` where `MAD` is the (lower)
//!      median over this session's voters of `|d_a − median(d)|`, and `3 × 1.4826` is the
//!      integer ratio `44478 / 10000` (rounded down). Flagged iff the lower median of the
//!      agent's windowed values exceeds the cutoff.
//! 5. `DetectorKind::None` reports no deviation and flags nobody.
//!
//! The known weakness of the design's detector, pinned by the tests: with two colluding attackers
//! out of five, the mean is dragged towards them far enough that the three honest agents also
//! deviate by more than 0.3 and are flagged; the median stays on the honest point and only the
//! attackers are flagged.
//!
//! Everything is integer parts per million, iterated in ascending agent order, and independent
//! of the order of the votes. The caller must derive detection only from agreed sessions (and
//! the registry they produced) so that every honest agent reaches the same decisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{DetectorConfig, DetectorKind};
use crate::fixed::{Ppm, PPM_ONE};
use crate::registry::Registry;
use crate::types::{AgentId, AgentVote, CandidateId, VoteValue};

/// `3 × 1.4826` (three standard deviations of a normal, estimated by the MAD), numerator.
const MAD_CUTOFF_NUM: u64 = 44_478;
/// `3 × 1.4826`, denominator.
const MAD_CUTOFF_DEN: u64 = 10_000;

/// What the detector concluded about one session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// Each voter's deviation in this session (the value the registry appends to its window).
    pub deviations: BTreeMap<AgentId, Ppm>,
    /// Agents flagged as Byzantine in this session, ascending.
    pub flagged: Vec<AgentId>,
}

/// Design §3.2 `detect_malicious_agents(&votes, &history)`.
///
/// `votes`: validated votes of this session, at most one per agent, all from active agents.
/// `candidates`: the session's candidates (ascending ids).
/// The history is each agent's deviation window in `registry`. See the module documentation
/// for the exact rules.
pub fn detect(
    config: &DetectorConfig,
    votes: &[&AgentVote],
    candidates: &[CandidateId],
    registry: &Registry,
) -> Detection {
    let detection = match config.kind {
        DetectorKind::None => return Detection::default(),
        DetectorKind::MeanDeviation => {
            let deviations = session_deviations(votes, candidates, mean_point);
            let flagged = flag_by_windowed_mean(config, &deviations, registry);
            Detection { deviations, flagged }
        }
        DetectorKind::MedianMad => {
            let deviations = session_deviations(votes, candidates, median_point);
            let flagged = flag_by_windowed_median(config, &deviations, registry);
            Detection { deviations, flagged }
        }
    };
    debug_assert!(detection.flagged.windows(2).all(|w| w[0] < w[1]), "flagged agents must be strictly ascending");
    debug_assert!(
        detection.flagged.iter().all(|a| detection.deviations.contains_key(a)),
        "only agents that voted in the session can be flagged"
    );
    detection
}

/// Each voter's L-infinity distance to the reference point computed by `reference`.
fn session_deviations(
    votes: &[&AgentVote],
    candidates: &[CandidateId],
    reference: fn(&BTreeMap<AgentId, Vec<u32>>, usize) -> Vec<u32>,
) -> BTreeMap<AgentId, Ppm> {
    let mut coordinates = candidates.to_vec();
    coordinates.sort_unstable();
    coordinates.dedup();
    let points = session_points(votes, &coordinates);
    let centre = reference(&points, coordinates.len());
    debug_assert_eq!(centre.len(), coordinates.len(), "the reference has one coordinate per candidate");
    let deviations: BTreeMap<AgentId, Ppm> =
        points.iter().map(|(agent, point)| (*agent, linf_distance(point, &centre))).collect();
    debug_assert_eq!(deviations.len(), points.len(), "one deviation per voter");
    deviations
}

/// One point per voting agent over `coordinates` (sorted, unique candidates).
///
/// Duplicate votes from one agent are a caller bug (validation keeps one per agent); in release
/// builds the smallest vote (by `Ord`) is kept so that the result stays order-independent.
fn session_points(votes: &[&AgentVote], coordinates: &[CandidateId]) -> BTreeMap<AgentId, Vec<u32>> {
    let mut by_agent: BTreeMap<AgentId, &AgentVote> = BTreeMap::new();
    for vote in votes {
        let kept = by_agent.entry(vote.agent).or_insert(*vote);
        if *vote < *kept {
            *kept = *vote;
        }
    }
    debug_assert_eq!(by_agent.len(), votes.len(), "at most one vote per agent per session");
    by_agent
        .into_iter()
        .map(|(agent, vote)| {
            let mut point = vec![0_u32; coordinates.len()];
            if !vote.scores.is_empty() {
                // The voter reported a score for every candidate it evaluated: that is its point.
                for (slot, candidate) in point.iter_mut().zip(coordinates) {
                    *slot = vote.scores.get(candidate).map_or(0, |s| s.raw());
                }
            } else if let VoteValue::Accept { score, .. } = vote.value {
                let slot = coordinates.binary_search(&vote.candidate).ok().and_then(|i| point.get_mut(i));
                if let Some(slot) = slot {
                    *slot = score.raw();
                }
            }
            debug_assert!(point.iter().all(|v| *v <= PPM_ONE), "scores are fractions");
            (agent, point)
        })
        .collect()
}

/// Coordinate-wise mean of `points`, rounded down; the origin when there are no points.
fn mean_point(points: &BTreeMap<AgentId, Vec<u32>>, dimensions: usize) -> Vec<u32> {
    let mut sums = vec![0_u64; dimensions];
    for point in points.values() {
        debug_assert_eq!(point.len(), dimensions, "every point has one coordinate per candidate");
        for (sum, value) in sums.iter_mut().zip(point) {
            *sum += u64::from(*value);
        }
    }
    let count = (points.len() as u64).max(1);
    // A mean of values ≤ PPM_ONE is ≤ PPM_ONE, so the conversion cannot fail.
    sums.into_iter().map(|sum| u32::try_from(sum / count).unwrap_or(PPM_ONE)).collect()
}

/// Coordinate-wise lower median of `points`; the origin when there are no points.
fn median_point(points: &BTreeMap<AgentId, Vec<u32>>, dimensions: usize) -> Vec<u32> {
    let mut columns = vec![Vec::with_capacity(points.len()); dimensions];
    for point in points.values() {
        debug_assert_eq!(point.len(), dimensions, "every point has one coordinate per candidate");
        for (column, value) in columns.iter_mut().zip(point) {
            column.push(*value);
        }
    }
    columns.iter_mut().map(|column| lower_median(column)).collect()
}

/// `max_c |a[c] − b[c]|`; zero in zero dimensions.
fn linf_distance(a: &[u32], b: &[u32]) -> Ppm {
    debug_assert_eq!(a.len(), b.len(), "points of one session share their dimension");
    let distance = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    Ppm::saturating(u64::from(distance))
}

/// The agent's most recent past deviations plus this session's, at most `config.window` values
/// in total (at least one: this session's), oldest first.
fn windowed(config: &DetectorConfig, registry: &Registry, agent: AgentId, session: Ppm) -> Vec<u32> {
    let total = config.window.max(1);
    let mut values: Vec<u32> = match registry.get(agent) {
        Some(record) => {
            let skip = record.deviations.len().saturating_sub(total - 1);
            record.deviations.iter().skip(skip).map(Ppm::raw).collect()
        }
        None => Vec::new(),
    };
    values.push(session.raw());
    debug_assert!(!values.is_empty() && values.len() <= total, "window of 1..={total} values");
    values
}

/// The sum and the number of the values [`windowed`] returns, without collecting them (this
/// runs for every voter of every aggregation).
fn windowed_sum(config: &DetectorConfig, registry: &Registry, agent: AgentId, session: Ppm) -> (u128, u128) {
    let total = config.window.max(1);
    let (mut sum, mut count) = (u128::from(session.raw()), 1u128);
    if let Some(record) = registry.get(agent) {
        let skip = record.deviations.len().saturating_sub(total - 1);
        for d in record.deviations.iter().skip(skip) {
            sum += u128::from(d.raw());
            count += 1;
        }
    }
    debug_assert!(count <= total as u128, "window of 1..={total} values");
    (sum, count)
}

/// Design rule: flagged iff the mean of the windowed deviations exceeds the threshold.
fn flag_by_windowed_mean(
    config: &DetectorConfig,
    deviations: &BTreeMap<AgentId, Ppm>,
    registry: &Registry,
) -> Vec<AgentId> {
    let threshold = u128::from(config.threshold.raw());
    deviations
        .iter()
        .filter(|(agent, deviation)| {
            let (sum, count) = windowed_sum(config, registry, **agent, **deviation);
            // mean > threshold, exactly: sum / count > threshold.
            sum > threshold * count
        })
        .map(|(agent, _)| *agent)
        .collect()
}

/// Robust rule: flagged iff the median of the windowed deviations exceeds the MAD cutoff.
fn flag_by_windowed_median(
    config: &DetectorConfig,
    deviations: &BTreeMap<AgentId, Ppm>,
    registry: &Registry,
) -> Vec<AgentId> {
    let session: Vec<u32> = deviations.values().map(|d| d.raw()).collect();
    let cutoff = mad_cutoff(config.threshold, &session);
    debug_assert!(cutoff >= u64::from(config.threshold.raw()), "the cutoff never falls below the threshold");
    deviations
        .iter()
        .filter(|(agent, deviation)| {
            let mut values = windowed(config, registry, **agent, **deviation);
            u64::from(lower_median(&mut values)) > cutoff
        })
        .map(|(agent, _)| *agent)
        .collect()
}

/// `max(threshold, 3 × 1.4826 × MAD)` over this session's deviations, in parts per million.
fn mad_cutoff(threshold: Ppm, session: &[u32]) -> u64 {
    let mut values = session.to_vec();
    let centre = lower_median(&mut values);
    let mut spread: Vec<u32> = values.iter().map(|d| d.abs_diff(centre)).collect();
    let mad = lower_median(&mut spread);
    let scaled = u64::from(mad) * MAD_CUTOFF_NUM / MAD_CUTOFF_DEN;
    scaled.max(u64::from(threshold.raw()))
}

/// The lower median (element `(n − 1) / 2` once sorted); zero for no values. Sorts `values`.
fn lower_median(values: &mut [u32]) -> u32 {
    values.sort_unstable();
    let middle = values.len().saturating_sub(1) / 2;
    values.get(middle).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::EngineConfig;
    use crate::types::{AgentSpecialization, RejectionReason, SessionId};

    /// What one agent casts in a test session.
    #[derive(Clone, Copy, Debug)]
    enum Cast {
        /// Accept `(candidate, score ppm)`.
        Accept(u32, u32),
        /// Reject the candidate.
        Reject(u32),
        /// Abstain on the candidate.
        Abstain(u32),
    }

    use Cast::{Abstain, Accept, Reject};

    const MEAN: DetectorKind = DetectorKind::MeanDeviation;
    const MAD: DetectorKind = DetectorKind::MedianMad;
    /// An honest vote: 0.9 on candidate 0.
    const H: Cast = Accept(0, 900_000);
    /// An attacker's vote: 0.95 on candidate 1.
    const X: Cast = Accept(1, 950_000);

    fn vote(agent: u32, cast: Cast) -> AgentVote {
        let (candidate, score) = match cast {
            Accept(c, s) => (c, s),
            Reject(c) | Abstain(c) => (c, 0),
        };
        let mut v = AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            SessionId(1),
            CandidateId(candidate),
            Ppm::saturating(u64::from(score)),
            Ppm::saturating(900_000),
        );
        match cast {
            Accept(..) => {}
            Reject(_) => v.value = VoteValue::Reject { reason: RejectionReason::Inaccurate },
            Abstain(_) => v.value = VoteValue::Abstain { reason: "unsure".into() },
        }
        v
    }

    struct Case {
        name: &'static str,
        kind: DetectorKind,
        window: usize,
        /// `(agent, deviation ppm, times)`, pushed in order before the session.
        history: &'static [(u32, u32, usize)],
        votes: &'static [(u32, Cast)],
        /// Expected `(agent, deviation ppm)` of every voter.
        deviations: &'static [(u32, u32)],
        flagged: &'static [u32],
    }

    const UNANIMOUS: &[(u32, Cast)] = &[
        (0, Accept(0, 900_000)),
        (1, Accept(0, 850_000)),
        (2, Accept(0, 920_000)),
        (3, Accept(0, 880_000)),
        (4, Accept(0, 950_000)),
    ];
    const UNANIMOUS_DEV: &[(u32, u32)] = &[(0, 0), (1, 50_000), (2, 20_000), (3, 20_000), (4, 50_000)];
    const ONE_ATTACKER: &[(u32, Cast)] = &[(0, H), (1, H), (2, H), (3, H), (4, X)];
    const ONE_ATTACKER_MEAN_DEV: &[(u32, u32)] =
        &[(0, 190_000), (1, 190_000), (2, 190_000), (3, 190_000), (4, 760_000)];
    const ONE_ATTACKER_MAD_DEV: &[(u32, u32)] = &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 950_000)];
    const COLLUSION: &[(u32, Cast)] = &[(0, H), (1, H), (2, H), (3, X), (4, X)];
    const SPREAD: &[(u32, Cast)] = &[
        (0, Accept(0, 100_000)),
        (1, Accept(0, 300_000)),
        (2, Accept(0, 500_000)),
        (3, Accept(0, 700_000)),
        (4, Accept(0, 900_000)),
    ];
    const SPREAD_DEV: &[(u32, u32)] = &[(0, 400_000), (1, 200_000), (2, 0), (3, 200_000), (4, 400_000)];
    const SILENT: &[(u32, Cast)] = &[(0, Reject(0)), (1, Abstain(0)), (2, Reject(1)), (3, Abstain(2)), (4, Reject(2))];
    const SILENT_DEV: &[(u32, u32)] = &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)];
    const DISSENT_MEAN_DEV: &[(u32, u32)] = &[(0, 180_000), (1, 180_000), (2, 180_000), (3, 180_000), (4, 720_000)];
    const DISSENT_MAD_DEV: &[(u32, u32)] = &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 900_000)];

    const CASES: &[Case] = &[
        Case {
            name: "unanimous committee, mean",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: UNANIMOUS,
            deviations: UNANIMOUS_DEV,
            flagged: &[],
        },
        Case {
            name: "unanimous committee, median/MAD",
            kind: MAD,
            window: 100,
            history: &[],
            votes: UNANIMOUS,
            deviations: UNANIMOUS_DEV,
            flagged: &[],
        },
        Case {
            name: "one attacker of five, mean",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MEAN_DEV,
            flagged: &[4],
        },
        Case {
            name: "one attacker of five, median/MAD",
            kind: MAD,
            window: 100,
            history: &[],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MAD_DEV,
            flagged: &[4],
        },
        // The design detector's weakness: the two attackers drag the mean to (0.54, 0.38), so the
        // honest agents deviate by 0.38 > 0.3 and are flagged with the attackers.
        Case {
            name: "two colluding of five, mean flags the honest agents too",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: COLLUSION,
            deviations: &[(0, 380_000), (1, 380_000), (2, 380_000), (3, 570_000), (4, 570_000)],
            flagged: &[0, 1, 2, 3, 4],
        },
        Case {
            name: "two colluding of five, median/MAD flags exactly the attackers",
            kind: MAD,
            window: 100,
            history: &[],
            votes: COLLUSION,
            deviations: &[(0, 0), (1, 0), (2, 0), (3, 950_000), (4, 950_000)],
            flagged: &[3, 4],
        },
        // 99 clean values of 0.01 plus 0.76: mean 0.0175.
        Case {
            name: "long clean history absorbs one bad session, mean",
            kind: MEAN,
            window: 100,
            history: &[(4, 10_000, 100)],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MEAN_DEV,
            flagged: &[],
        },
        Case {
            name: "long clean history absorbs one bad session, median/MAD",
            kind: MAD,
            window: 100,
            history: &[(4, 10_000, 100)],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MAD_DEV,
            flagged: &[],
        },
        // Window 4 keeps [0, 0, 0, 0.76] (mean 0.19); window 5 also keeps the old 1.0 (mean 0.352).
        Case {
            name: "window 4 drops the oldest value",
            kind: MEAN,
            window: 4,
            history: &[(4, 1_000_000, 1), (4, 0, 3)],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MEAN_DEV,
            flagged: &[],
        },
        Case {
            name: "window 5 keeps the oldest value",
            kind: MEAN,
            window: 5,
            history: &[(4, 1_000_000, 1), (4, 0, 3)],
            votes: ONE_ATTACKER,
            deviations: ONE_ATTACKER_MEAN_DEV,
            flagged: &[4],
        },
        // [0.9 × 4, 0.0]: mean 0.72 > 0.3 although the agent agrees with the committee now.
        Case {
            name: "bad history flags a currently agreeing agent, mean",
            kind: MEAN,
            window: 100,
            history: &[(0, 900_000, 4)],
            votes: UNANIMOUS,
            deviations: UNANIMOUS_DEV,
            flagged: &[0],
        },
        Case {
            name: "reject among accepts is the zero vector, mean",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: &[(0, H), (1, H), (2, H), (3, H), (4, Reject(0))],
            deviations: DISSENT_MEAN_DEV,
            flagged: &[4],
        },
        Case {
            name: "abstain among accepts is the zero vector, median/MAD",
            kind: MAD,
            window: 100,
            history: &[],
            votes: &[(0, H), (1, H), (2, H), (3, H), (4, Abstain(1))],
            deviations: DISSENT_MAD_DEV,
            flagged: &[4],
        },
        Case {
            name: "all reject or abstain, mean",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: SILENT,
            deviations: SILENT_DEV,
            flagged: &[],
        },
        Case {
            name: "all reject or abstain, median/MAD",
            kind: MAD,
            window: 100,
            history: &[],
            votes: SILENT,
            deviations: SILENT_DEV,
            flagged: &[],
        },
        // MAD = 0.2, so the cutoff rises to 0.88956 and the 0.4 outliers of a wide honest spread pass.
        Case {
            name: "wide honest spread, mean flags the extremes",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: SPREAD,
            deviations: SPREAD_DEV,
            flagged: &[0, 4],
        },
        Case {
            name: "wide honest spread, MAD raises the cutoff",
            kind: MAD,
            window: 100,
            history: &[],
            votes: SPREAD,
            deviations: SPREAD_DEV,
            flagged: &[],
        },
        Case {
            name: "agent unknown to the registry has no history",
            kind: MEAN,
            window: 100,
            history: &[],
            votes: &[(0, H), (1, H), (2, H), (3, H), (7, X)],
            deviations: &[(0, 190_000), (1, 190_000), (2, 190_000), (3, 190_000), (7, 760_000)],
            flagged: &[7],
        },
        Case {
            name: "detector none",
            kind: DetectorKind::None,
            window: 100,
            history: &[],
            votes: COLLUSION,
            deviations: &[],
            flagged: &[],
        },
    ];

    fn candidates() -> Vec<CandidateId> {
        vec![CandidateId(0), CandidateId(1), CandidateId(2)]
    }

    /// A few orders of `0..n`: reversed, every rotation, evens then odds.
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        let mut orders = vec![(0..n).rev().collect::<Vec<_>>()];
        orders.extend((1..n).map(|k| (0..n).map(|i| (i + k) % n).collect()));
        orders.push((0..n).step_by(2).chain((1..n).step_by(2)).collect());
        orders
    }

    #[test]
    fn detection_table() {
        for case in CASES {
            let config = DetectorConfig { kind: case.kind, threshold: Ppm::saturating(300_000), window: case.window };
            let mut registry = Registry::seed_committee(5, &EngineConfig::default());
            for &(agent, value, times) in case.history {
                for _ in 0..times {
                    registry.get_mut(AgentId(agent)).unwrap().deviations.push(Ppm::saturating(u64::from(value)));
                }
            }
            let votes: Vec<AgentVote> = case.votes.iter().map(|&(agent, cast)| vote(agent, cast)).collect();
            let refs: Vec<&AgentVote> = votes.iter().collect();
            let got = detect(&config, &refs, &candidates(), &registry);
            let deviations: BTreeMap<AgentId, Ppm> =
                case.deviations.iter().map(|&(a, d)| (AgentId(a), Ppm::saturating(u64::from(d)))).collect();
            let flagged: Vec<AgentId> = case.flagged.iter().map(|&a| AgentId(a)).collect();
            assert_eq!(got.deviations, deviations, "{}: deviations", case.name);
            assert_eq!(got.flagged, flagged, "{}: flagged", case.name);
            for order in permutations(refs.len()) {
                let shuffled: Vec<&AgentVote> = order.iter().map(|&i| refs[i]).collect();
                assert_eq!(detect(&config, &shuffled, &candidates(), &registry), got, "{}: order {order:?}", case.name);
            }
        }
    }

    #[test]
    fn mad_cutoff_scales_the_median_absolute_deviation() {
        let threshold = Ppm::saturating(300_000);
        // d = [0.4, 0.2, 0, 0.2, 0.4]: median 0.2, MAD 0.2, 4.4478 × 0.2 = 0.88956.
        assert_eq!(mad_cutoff(threshold, &[400_000, 200_000, 0, 200_000, 400_000]), 889_560);
        // Two attackers of five: MAD 0, the threshold is the floor.
        assert_eq!(mad_cutoff(threshold, &[0, 0, 0, 950_000, 950_000]), 300_000);
        assert_eq!(mad_cutoff(threshold, &[]), 300_000);
    }

    #[test]
    fn lower_median_takes_the_lower_middle() {
        assert_eq!(lower_median(&mut [4, 1, 3, 2]), 2);
        assert_eq!(lower_median(&mut [5, 1, 3]), 3);
        assert_eq!(lower_median(&mut []), 0);
    }

    #[test]
    fn per_candidate_scores_keep_honest_splits_close_and_expose_the_worst_pick() {
        let registry = Registry::seed_committee(5, &EngineConfig::default());
        let cs = candidates();
        let scored = |agent: u32, pick: usize, scores: [u32; 3]| {
            let mut v = vote(agent, Accept(cs[pick].0, scores[pick]));
            v.scores = cs.iter().zip(scores).map(|(c, s)| (*c, Ppm::saturating(u64::from(s)))).collect();
            v
        };
        // Two honest camps between two close candidates, one agent scoring the worst highest.
        let votes = [
            scored(0, 0, [820_000, 800_000, 100_000]),
            scored(1, 0, [810_000, 790_000, 120_000]),
            scored(2, 1, [790_000, 830_000, 90_000]),
            scored(3, 1, [800_000, 820_000, 110_000]),
            scored(4, 2, [50_000, 60_000, 950_000]),
        ];
        let refs: Vec<&AgentVote> = votes.iter().collect();
        for kind in [MEAN, MAD] {
            let config = DetectorConfig { kind, ..DetectorConfig::default() };
            let d = detect(&config, &refs, &cs, &registry);
            assert_eq!(d.flagged, vec![AgentId(4)], "{kind:?}: {d:?}");
        }
    }

    #[test]
    fn no_votes_no_detection() {
        let registry = Registry::seed_committee(5, &EngineConfig::default());
        for kind in [MEAN, MAD] {
            let config = DetectorConfig { kind, ..DetectorConfig::default() };
            assert_eq!(detect(&config, &[], &candidates(), &registry), Detection::default());
        }
    }

    fn cast_strategy() -> impl Strategy<Value = Cast> {
        prop_oneof![
            4 => (0_u32..3, 0_u32..=PPM_ONE).prop_map(|(c, s)| Accept(c, s)),
            1 => (0_u32..3).prop_map(Reject),
            1 => (0_u32..3).prop_map(Abstain),
        ]
    }

    proptest! {
        /// Deviations are fractions of voters, flagged agents are voters, and the result does
        /// not depend on the order of the votes.
        #[test]
        fn detection_is_order_independent(
            (casts, order) in prop::collection::vec(cast_strategy(), 1..9).prop_flat_map(|casts| {
                let order: Vec<usize> = (0..casts.len()).collect();
                (Just(casts), Just(order).prop_shuffle())
            }),
            history in prop::collection::vec(0_u32..=PPM_ONE, 0..6),
        ) {
            let mut registry = Registry::seed_committee(8, &EngineConfig::default());
            for (i, d) in history.iter().enumerate() {
                registry.get_mut(AgentId(i as u32)).unwrap().deviations.push(Ppm::saturating(u64::from(*d)));
            }
            let votes: Vec<AgentVote> = casts.iter().enumerate().map(|(i, c)| vote(i as u32, *c)).collect();
            let refs: Vec<&AgentVote> = votes.iter().collect();
            let shuffled: Vec<&AgentVote> = order.iter().map(|&i| refs[i]).collect();
            for kind in [MEAN, MAD] {
                let config = DetectorConfig { kind, threshold: Ppm::saturating(300_000), window: 3 };
                let got = detect(&config, &refs, &candidates(), &registry);
                prop_assert_eq!(got.deviations.len(), votes.len());
                prop_assert!(got.deviations.values().all(|d| d.raw() <= PPM_ONE));
                prop_assert!(got.flagged.iter().all(|a| got.deviations.contains_key(a)));
                prop_assert_eq!(detect(&config, &shuffled, &candidates(), &registry), got);
            }
        }
    }
}
