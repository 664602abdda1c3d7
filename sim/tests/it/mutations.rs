//! A checker that cannot fail is worthless: each mutation must be caught within 1,000 seeds by
//! the invariant its scenario names, and the same seeds without the mutation must be clean.

use sim::protocol_mutation_off;
use sim::results::RunOutcome;
use sim::run::{run, RunOptions};
use sim::scenario;

use crate::scenarios;

/// Runs seeds from 0 until the expected invariant is violated; returns that seed.
fn first_catch(file: &str) -> u64 {
    let path = scenarios().join(file);
    let s = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let expected = s.expect.invariant.clone().unwrap_or_else(|| panic!("{file} names no invariant"));
    assert!(!s.expect.safety, "{file} must expect a violation");
    for seed in 0..1_000 {
        let record = run(&s, seed, Default::default(), RunOptions::default()).record;
        if let Some(v) = record.violations.first() {
            assert_eq!(v.invariant, expected, "{file} seed {seed} violated another invariant: {v:?}");
            assert_eq!(record.outcome, RunOutcome::Violation);
            return seed;
        }
    }
    panic!("{file}: no {expected} violation in 1,000 seeds");
}

/// The same scenario without the mutation, over the seeds up to the catch, violates nothing.
fn clean_without_mutation(file: &str, up_to: u64) {
    let path = scenarios().join(file);
    let s = protocol_mutation_off(&scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
    for seed in 0..=up_to {
        let record = run(&s, seed, Default::default(), RunOptions::default()).record;
        assert!(record.violations.is_empty(), "{file} without its mutation, seed {seed}: {:?}", record.violations);
    }
}

#[test]
fn quorum_one_short_is_caught_by_agreement() {
    let seed = first_catch("mut-quorum-one-short.toml");
    clean_without_mutation("mut-quorum-one-short.toml", seed);
}

#[test]
fn no_locking_is_caught_by_lock_respected() {
    let seed = first_catch("mut-no-locking.toml");
    clean_without_mutation("mut-no-locking.toml", seed);
}

#[test]
fn skip_signature_check_is_caught_by_evidence_sound() {
    let seed = first_catch("mut-skip-signature-check.toml");
    clean_without_mutation("mut-skip-signature-check.toml", seed);
}

#[test]
fn local_timeout_fallback_is_caught_by_agreement() {
    let seed = first_catch("mut-local-timeout-fallback.toml");
    clean_without_mutation("mut-local-timeout-fallback.toml", seed);
}

#[test]
fn repropose_fresh_value_is_caught_by_valid_value() {
    let seed = first_catch("mut-repropose-fresh-value.toml");
    clean_without_mutation("mut-repropose-fresh-value.toml", seed);
}

#[test]
fn pol_round_zero_rejected_is_caught_by_liveness() {
    let seed = first_catch("mut-pol-round-zero-rejected.toml");
    clean_without_mutation("mut-pol-round-zero-rejected.toml", seed);
}

#[test]
fn duplicate_votes_counted_is_caught_by_valid_value() {
    let seed = first_catch("mut-duplicate-votes-counted.toml");
    clean_without_mutation("mut-duplicate-votes-counted.toml", seed);
}

#[test]
fn constant_timeouts_is_caught_by_liveness() {
    let seed = first_catch("mut-constant-timeouts.toml");
    clean_without_mutation("mut-constant-timeouts.toml", seed);
}

/// The liveness bound in rounds (`expect.liveness_rounds`, which `bftsim explore` sets) ends a
/// run whose rounds race ahead undecided at the round vote that crosses it, long before the
/// time bound (constant timeouts: round 20 at about 7.5 s of the 30 s); the correct protocol
/// decides well within 20 rounds on the same scenario.
#[test]
fn the_round_bound_ends_a_stalled_run_long_before_its_time_bound() {
    let path = scenarios().join("mut-constant-timeouts.toml");
    let mut s = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    s.expect.liveness_rounds = Some(20);
    let record = run(&s, 0, Default::default(), RunOptions::default()).record;
    let v = record.violations.first().unwrap_or_else(|| panic!("constant timeouts stall: {record:?}"));
    assert_eq!(v.invariant, "liveness");
    assert!(v.detail.contains("entered round 20 of session-0 without deciding it"), "{}", v.detail);
    assert!(v.time_ms < s.expect.liveness_bound_ms / 3, "{v:?}");
    assert!(record.sim_time_ms < s.expect.liveness_bound_ms / 3, "the run ended at the violation");
    let correct = protocol_mutation_off(&s);
    assert_eq!(correct.expect.liveness_rounds, Some(20));
    for seed in 0..3 {
        let record = run(&correct, seed, Default::default(), RunOptions::default()).record;
        assert!(record.violations.is_empty(), "seed {seed}: {:?}", record.violations);
    }
}

#[test]
fn proposal_not_reset_is_caught_by_timely_proposal() {
    let seed = first_catch("mut-proposal-not-reset.toml");
    clean_without_mutation("mut-proposal-not-reset.toml", seed);
}

#[test]
fn polka_not_relayed_is_caught_by_valid_value() {
    let seed = first_catch("mut-polka-not-relayed.toml");
    clean_without_mutation("mut-polka-not-relayed.toml", seed);
}

#[test]
fn quorum_two_f_plus_one_is_caught_by_valid_value() {
    let seed = first_catch("mut-quorum-two-f-plus-one.toml");
    clean_without_mutation("mut-quorum-two-f-plus-one.toml", seed);
}

/// The amnesia bug (Twins; Tendermint's accountability spec): a restarted agent that forgets
/// its lock and its own round votes signs another round vote where it had signed one.
#[test]
fn forget_lock_on_restart_is_caught_by_no_equivocation_across_restarts() {
    let seed = first_catch("mut-forget-lock-on-restart.toml");
    clean_without_mutation("mut-forget-lock-on-restart.toml", seed);
}

/// A replay that does not verify checksums replays a damaged record as if it were whole.
#[test]
fn skip_checksum_is_caught_by_corruption_detected() {
    let seed = first_catch("mut-skip-checksum.toml");
    clean_without_mutation("mut-skip-checksum.toml", seed);
}

/// An opener that answers before its record is durable loses an acknowledged session in a
/// power loss of its node.
#[test]
fn ack_before_durable_is_caught_by_acknowledged_durable() {
    let seed = first_catch("mut-ack-before-durable.toml");
    clean_without_mutation("mut-ack-before-durable.toml", seed);
}
