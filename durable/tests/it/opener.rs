//! The opener under seeded random submissions, openings, decisions and crashes: every session
//! acknowledged (its ticket durable) before a crash is still there after it (pending or
//! decided), its id is never handed to another session, and an opened session is re-sent with
//! the very signature it was first sent with.

use std::collections::BTreeMap;

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::sign::{sim_committee, SimSigner};
use consensus_core::SessionId;
use durable::{CrashMode, Opener, OpenerConfig, SimDisk};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type TestOpener = Opener<SimDisk, SimSigner>;

fn open(disk: &SimDisk) -> TestOpener {
    let signer = sim_committee(1, 4).client;
    let config = OpenerConfig { max_in_flight: 3, max_queued: 20, compact_log_bytes: 2_000 };
    Opener::open(disk.clone(), signer, config).unwrap_or_else(|e| panic!("{e}")).0
}

#[test]
fn acknowledged_sessions_survive_every_crash_and_ids_are_never_reused() {
    let mut restarts = 0;
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let disk = SimDisk::new();
        let mut opener = open(&disk);
        // Acknowledged id -> its query; ids whose `Open` was sent -> the signed spec.
        let mut acked: BTreeMap<u64, String> = BTreeMap::new();
        let mut unacked: Vec<(u64, u64, String)> = Vec::new();
        let mut sent: BTreeMap<u64, SignedSpec> = BTreeMap::new();
        let mut decided: Vec<u64> = Vec::new();
        for step in 0..300u64 {
            let at = format!("seed {seed} step {step}");
            match rng.gen_range(0..100) {
                0..=39 => {
                    let query = format!("s{seed} q{step}");
                    if let Ok(t) = opener.submit(query.clone(), 2) {
                        assert!(!acked.contains_key(&t.session.0), "{at}: id {} reused", t.session.0);
                        unacked.push((t.session.0, t.mark, query));
                    }
                }
                40..=59 => {
                    opener.sync().unwrap_or_else(|e| panic!("{at}: {e}"));
                    for (id, mark, query) in unacked.drain(..) {
                        assert!(opener.is_durable(mark));
                        acked.insert(id, query);
                    }
                }
                60..=79 => {
                    let mut out = Vec::new();
                    opener.poll_open(step, &mut out).unwrap_or_else(|e| panic!("{at}: {e}"));
                    opener.sync().unwrap_or_else(|e| panic!("{at}: {e}"));
                    for o in out {
                        assert!(opener.is_durable(o.mark), "{at}");
                        let id = o.spec.spec.session.0;
                        if let Some(q) = acked.get(&id) {
                            assert_eq!(&o.spec.spec.query, q, "{at}: session {id} opened with another query");
                        }
                        assert!(sent.insert(id, o.spec).is_none(), "{at}: session {id} opened twice");
                    }
                }
                80..=89 => {
                    if let Some(&id) = sent.keys().filter(|id| !decided.contains(id)).nth(rng.gen_range(0..3)) {
                        opener.decided(SessionId(id)).unwrap_or_else(|e| panic!("{at}: {e}"));
                        decided.push(id);
                    }
                }
                _ => {
                    let mode = match rng.gen_range(0..3) {
                        0 => CrashMode::LoseUnsynced,
                        1 => CrashMode::KeepPrefix { keep: rng.gen() },
                        _ => CrashMode::TearLast { keep: rng.gen(), bytes: rng.gen() },
                    };
                    drop(opener);
                    disk.crash(mode);
                    restarts += 1;
                    opener = open(&disk);
                    // Unacknowledged submissions may be lost; nothing acknowledged may be.
                    unacked.clear();
                    for id in acked.keys() {
                        let kept = opener.is_pending(SessionId(*id)) || decided.contains(id);
                        assert!(kept, "{at}: {mode:?}: acknowledged session {id} lost");
                        assert!(opener.next_session().0 > *id, "{at}: {mode:?}: id {id} would be reused");
                    }
                    let mut resent = Vec::new();
                    opener.resend(step, 1, &mut resent);
                    for spec in resent {
                        let id = spec.spec.session.0;
                        if let Some(first) = sent.get(&id) {
                            assert_eq!(&spec, first, "{at}: session {id} re-sent with another signature");
                        }
                        sent.insert(id, spec);
                    }
                    // A decision the opener had not logged durably is told again.
                    for id in &decided {
                        opener.decided(SessionId(*id)).unwrap_or_else(|e| panic!("{at}: {e}"));
                    }
                    sent.retain(|id, _| opener.is_pending(SessionId(*id)) || decided.contains(id));
                }
            }
        }
    }
    assert!(restarts > 1_000, "{restarts} restarts");
}
