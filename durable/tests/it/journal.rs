//! A journal driven by a seeded stream of appends, syncs, compactions, crashes (every mode)
//! and bit flips, checked against a model after every restart.

use durable::{CrashMode, Journal, LogError, SimDisk, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The state the journal holds: the ids of every record applied, in order.
type State = Vec<u32>;

fn record(id: u32, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut body = id.to_le_bytes().to_vec();
    body.extend(std::iter::repeat_n(0xA5, rng.gen_range(0..300)));
    body
}

fn encode(state: &State) -> Vec<u8> {
    state.iter().flat_map(|id| id.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> State {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Opens the journal and rebuilds the state: the snapshot, then each record's id.
fn open(disk: &SimDisk) -> Result<(Journal<SimDisk>, State), LogError> {
    let (journal, recovered) = Journal::open(disk.clone(), "j")?;
    let mut state = recovered.snapshot.as_deref().map(decode).unwrap_or_default();
    for (_, body) in recovered.replay.records() {
        state.push(u32::from_le_bytes([body[0], body[1], body[2], body[3]]));
    }
    Ok((journal, state))
}

fn crash_mode(rng: &mut ChaCha8Rng) -> CrashMode {
    match rng.gen_range(0..4) {
        0 => CrashMode::LoseUnsynced,
        1 => CrashMode::KeepUnsynced,
        2 => CrashMode::KeepPrefix { keep: rng.gen() },
        _ => CrashMode::TearLast { keep: rng.gen(), bytes: rng.gen() },
    }
}

#[test]
fn what_was_synced_survives_and_what_survives_is_a_prefix() {
    let (mut crashes, mut refused, mut flips) = (0, 0, 0);
    for seed in 0..300u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let disk = SimDisk::new();
        let (mut journal, mut state) = open(&disk).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mut written: State = Vec::new();
        let mut durable = 0;
        let mut next = 0u32;
        let mut damaged = false;
        for step in 0..400 {
            let at = format!("seed {seed} step {step}");
            match rng.gen_range(0..100) {
                0..=69 => {
                    journal.append(&record(next, &mut rng)).unwrap_or_else(|e| panic!("{at}: {e}"));
                    state.push(next);
                    written.push(next);
                    next += 1;
                }
                70..=84 => {
                    journal.sync().unwrap_or_else(|e| panic!("{at}: {e}"));
                    durable = state.len();
                }
                85..=89 => {
                    journal.compact(&encode(&state)).unwrap_or_else(|e| panic!("{at}: {e}"));
                    durable = state.len();
                }
                90..=91 if !damaged => {
                    // Damage a durable bit of the log or the snapshot.
                    let file = if rng.gen() { "j.snap".to_owned() } else { format!("j.{}.log", journal.generation()) };
                    let len = disk.durable_content(&file).map_or(0, |c| c.len() as u64);
                    if len > 0 && disk.flip_bit(&file, rng.gen_range(0..len * 8)) {
                        damaged = true;
                        flips += 1;
                    }
                }
                _ => {
                    let mode = crash_mode(&mut rng);
                    drop(journal);
                    disk.crash(mode);
                    crashes += 1;
                    let before = state.clone();
                    match open(&disk) {
                        Ok((j, s)) => {
                            assert!(
                                before.starts_with(&s),
                                "{at}: {mode:?}: recovered {s:?} is not a prefix of {before:?}"
                            );
                            if !damaged {
                                assert!(
                                    s.len() >= durable,
                                    "{at}: {mode:?}: lost synced records ({} < {durable})",
                                    s.len()
                                );
                            }
                            if mode == CrashMode::LoseUnsynced && !damaged {
                                assert_eq!(s.len(), durable, "{at}");
                            }
                            if mode == CrashMode::KeepUnsynced && !damaged {
                                assert_eq!(s, before, "{at}");
                            }
                            journal = j;
                            state = s;
                            durable = state.len();
                            damaged = false;
                        }
                        Err(LogError::Corrupt { .. }) if damaged => {
                            refused += 1;
                            break;
                        }
                        Err(e) => panic!("{at}: {mode:?}: {e}"),
                    }
                }
            }
        }
        assert!(written.len() as u32 == next);
        let _ = disk.list();
    }
    assert!(crashes > 1_000 && flips > 100 && refused > 50, "crashes {crashes}, flips {flips}, refused {refused}");
}
