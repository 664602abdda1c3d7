//! Aggregation cost per session for committees of 5, 31 and 101 agents (seed 5: the 500 ms
//! SLA is measured here, never asserted on the wall clock in tests).
//!
//! `cargo bench -p consensus-core --bench aggregation`

use std::collections::BTreeMap;
use std::hint::black_box;

use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::config::DetectorKind;
use consensus_core::registry::Registry;
use consensus_core::{AgentId, AgentSpecialization, AgentVote, CandidateId, EngineConfig, Ppm, SessionId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const CANDIDATES: [CandidateId; 4] = [CandidateId(0), CandidateId(1), CandidateId(2), CandidateId(3)];

/// Honest-looking votes with a deterministic spread, every fifth agent dissenting.
fn votes(n: u32, session: SessionId) -> Vec<AgentVote> {
    (0..n)
        .map(|i| {
            let jitter = (i * 7919 % 100) * 1_000;
            let scores: BTreeMap<CandidateId, Ppm> =
                CANDIDATES.iter().map(|c| (*c, Ppm::saturating(u64::from(850_000 - c.0 * 200_000 + jitter)))).collect();
            let choice = if i % 5 == 4 { CandidateId(1) } else { CandidateId(0) };
            let mut scores = scores;
            if choice == CandidateId(1) {
                scores.insert(choice, Ppm::saturating(950_000));
            }
            let score = scores.get(&choice).copied().unwrap_or(Ppm::ZERO);
            let mut v = AgentVote::accept(
                AgentId(i),
                AgentSpecialization::cycled(i as usize),
                session,
                choice,
                score,
                Ppm::saturating(u64::from(900_000 + jitter / 10)),
            );
            v.scores = scores;
            v
        })
        .collect()
}

fn bench_aggregate(c: &mut Criterion) {
    let mut group = c.benchmark_group("aggregate");
    for kind in [DetectorKind::MeanDeviation, DetectorKind::MedianMad] {
        for n in [5u32, 31, 101] {
            let mut config = EngineConfig::default();
            config.detector.kind = kind;
            let registry = Registry::seed_committee(n, &config);
            let session = SessionId(1);
            let votes = votes(n, session);
            let input = SessionInput { session, candidates: &CANDIDATES, votes: &votes };
            group.bench_with_input(BenchmarkId::new(format!("{kind:?}"), n), &input, |b, input| {
                b.iter(|| black_box(aggregate(black_box(input), &registry, &config)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_aggregate);
criterion_main!(benches);
