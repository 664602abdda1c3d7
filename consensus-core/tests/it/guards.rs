//! The engine reports what its validity guards did (docs/protocol.md V10–V13), both outcomes of
//! each, for protocol coverage (docs/coverage.md): `conflict::resolve_conflict_guarded`.

use consensus_core::conflict::{resolve_conflict_guarded, Context, Guards, TalliedVote, Tally};
use consensus_core::{AgentId, CandidateId, EngineConfig, Ppm};

/// (agent, supported candidate or abstain, score, confidence): every vote of weight 1.
type Row = (u32, Option<u32>, u64, u64);

fn tally(rows: &[Row]) -> Tally {
    let votes = rows
        .iter()
        .map(|&(agent, support, score, confidence)| TalliedVote {
            agent: AgentId(agent),
            support: support.map(CandidateId),
            score: Ppm::saturating(score),
            confidence: Ppm::saturating(confidence),
            weight_micro: 1_000_000,
            flagged: false,
        })
        .collect();
    Tally::new(votes, EngineConfig::default().agreement_basis)
}

fn guards(rows: &[Row], flagged: &[u32], ctx: Context) -> Guards {
    let mut t = tally(rows);
    if !flagged.is_empty() {
        let votes = t.votes().iter().map(|v| TalliedVote { flagged: flagged.contains(&v.agent.0), ..*v }).collect();
        t = Tally::new(votes, EngineConfig::default().agreement_basis);
    }
    let mut g = Guards::default();
    let _ = resolve_conflict_guarded(&t, ctx, &EngineConfig::default(), &mut g);
    g
}

#[test]
fn guards_note_both_outcomes_of_v10_to_v13() {
    let (n4, n5, n7) = (
        Context { participation_quorum: 3, max_faulty: 1 },
        Context { participation_quorum: 4, max_faulty: 1 },
        Context { participation_quorum: 5, max_faulty: 2 },
    );
    let (pass, fail) = (Some(true), Some(false));
    let c = |agent, candidate, confidence| (agent, Some(candidate), 900_000, confidence);
    let none = Guards::default();
    let four_for_0 = [c(0, 0, 800_000), c(1, 0, 800_000), c(2, 0, 800_000), c(3, 0, 800_000)];
    // A threshold decision: V10 holds.
    assert_eq!(guards(&four_for_0, &[], n4), Guards { support: pass, ..none });
    // One flagged of four: re-tallied (V13), then decided (V10); one flagged of three: too few.
    assert_eq!(guards(&four_for_0, &[3], n4), Guards { support: pass, retally: pass, ..none });
    assert_eq!(guards(&four_for_0[..3], &[2], n5), Guards { retally: fail, ..none });
    // A 2-2-1 tie at f = 1 is broken by evidence (V11); a 2-2-1-1-1 tie at f = 2 is not.
    let tie = [c(0, 0, 800_000), c(1, 0, 800_000), (2, Some(1), 600_000, 800_000), (3, Some(1), 600_000, 800_000)];
    assert_eq!(guards(&[&tie[..], &[c(4, 2, 800_000)]].concat(), &[], n5), Guards { support: pass, tie: pass, ..none });
    let small = [c(0, 0, 800_000), c(1, 0, 800_000), c(2, 1, 800_000), c(3, 1, 800_000), c(4, 2, 800_000)];
    assert_eq!(
        guards(&[&small[..], &[c(5, 3, 800_000), c(6, 4, 800_000)]].concat(), &[], n7),
        Guards { tie: fail, ..none }
    );
    // A plurality of f = 2 with one strong dissenter: no minority (V12), then no decision (V10).
    let plurality = [c(0, 0, 800_000), c(1, 0, 800_000), c(2, 1, 950_000), c(3, 2, 800_000), c(4, 3, 800_000)];
    let abstain = [(5, None, 0, 500_000), (6, None, 0, 500_000)];
    assert_eq!(guards(&[&plurality[..], &abstain].concat(), &[], n7), Guards { support: fail, minority: fail, ..none });
    // Two strong dissenters for one candidate (f = 1): evidence analysis (V12).
    let minority = [
        c(0, 0, 900_000),
        c(1, 0, 900_000),
        c(2, 0, 900_000),
        (3, Some(1), 300_000, 950_000),
        (4, Some(1), 300_000, 950_000),
    ];
    assert_eq!(guards(&minority, &[], n5), Guards { support: pass, minority: pass, ..none });
}
