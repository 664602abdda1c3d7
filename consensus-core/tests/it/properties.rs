//! Property tests: quorum math for every n ≤ 64, threshold edges, and aggregation that does not
//! depend on vote order and is deterministic.

use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::config::{AgreementBasis, DetectorKind};
use consensus_core::quorum::{f_max, quorum, verify_byzantine_tolerance};
use consensus_core::registry::Registry;
use consensus_core::{CandidateId, EngineConfig, Ratio, SessionId};
use proptest::prelude::*;

use crate::support::accept;

#[test]
fn quorum_intersection_and_liveness_for_every_n_up_to_64() {
    for n in 1..=64u64 {
        for f in 0..=f_max(n) {
            let q = quorum(n, f).unwrap_or_else(|e| panic!("n={n} f={f}: {e}"));
            // Any two quorums share ≥ f + 1 agents: at least one honest.
            let overlap = 2 * q - n;
            assert!(overlap > f, "intersection n={n} f={f} q={q}");
            // The honest agents form a quorum alone.
            assert!(n - f >= q, "liveness n={n} f={f} q={q}");
            assert!(q <= n);
        }
        // One more Byzantine agent than tolerated breaks n ≥ 3f + 1.
        let over = verify_byzantine_tolerance(n, f_max(n) + 1);
        if let Ok(t) = over {
            assert!(!t.fault_tolerant, "n={n}");
        }
        let at = verify_byzantine_tolerance(n, f_max(n)).unwrap_or_else(|e| panic!("{e}"));
        assert!(at.fault_tolerant && at.minimum_agents <= n);
    }
}

proptest! {
    #[test]
    fn threshold_reached_matches_exact_rational_comparison(num in 1u64..1000, extra in 0u64..1000, part in 0u64..10_000, whole in 1u64..10_000) {
        let den = num + extra;
        let t = Ratio::new(num, den).unwrap_or_else(|| panic!("{num}/{den}"));
        let part = part.min(whole);
        let exact = (part as u128) * (den as u128) >= (whole as u128) * (num as u128);
        prop_assert_eq!(t.reached(part as u128, whole as u128), exact);
        // min_count is the smallest count that reaches the threshold.
        let k = t.min_count(whole);
        prop_assert!(t.reached(k as u128, whole as u128));
        if k > 0 {
            prop_assert!(!t.reached((k - 1) as u128, whole as u128));
        }
    }

    #[test]
    fn aggregation_does_not_depend_on_vote_order(
        choices in prop::collection::vec((0u32..3, 0u32..=100, 50u32..=100), 1..12),
        rotation in 0usize..12,
        weighted in any::<bool>(),
        robust in any::<bool>(),
    ) {
        let mut config = EngineConfig::default();
        if weighted { config.agreement_basis = AgreementBasis::Weight; }
        if robust { config.detector.kind = DetectorKind::MedianMad; }
        let n = choices.len() as u32;
        let registry = Registry::seed_committee(n, &config);
        let session = SessionId(1);
        let votes: Vec<_> = choices.iter().enumerate().map(|(i, &(c, s, conf))| {
            accept(session, i as u32, c, f64::from(s) / 100.0, f64::from(conf) / 100.0)
        }).collect();
        let candidates = [CandidateId(0), CandidateId(1), CandidateId(2)];
        let forward = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        let mut shuffled = votes.clone();
        shuffled.rotate_left(rotation % votes.len());
        shuffled.reverse();
        let other = aggregate(&SessionInput { session, candidates: &candidates, votes: &shuffled }, &registry, &config);
        prop_assert_eq!(&forward, &other);
        // Deterministic: the same input gives the same output.
        let again = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        prop_assert_eq!(forward, again);
    }
}
