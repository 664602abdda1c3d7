//! The full-power agent's random streams: one ChaCha8 stream per (session, round, purpose),
//! seeded from the agent's seed and those three numbers. A draw for one purpose in one round of
//! one session depends only on the draws made before it on that stream, so switching a family
//! off, or a session that no longer exists, leaves every other stream where it was (what lets
//! `bftsim shrink` remove them without re-rolling the rest).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::MAX_STREAMS;
use crate::adversary::{digest, first_eight};
use crate::protocol::Round;
use crate::types::SessionId;

/// The purpose of the wake-up draws (the families use their own index).
pub(super) const WAKE: u8 = 100;

/// Live streams, by (session, round, purpose).
pub(super) struct Streams {
    seed: u64,
    live: BTreeMap<(SessionId, Round, u8), ChaCha8Rng>,
}

impl Streams {
    pub(super) fn new(seed: u64) -> Streams {
        Streams { seed, live: BTreeMap::new() }
    }

    /// The stream of (session, round, purpose), taken out; give it back with [`Streams::put`].
    pub(super) fn take(&mut self, session: SessionId, round: Round, purpose: u8) -> ChaCha8Rng {
        match self.live.remove(&(session, round, purpose)) {
            Some(rng) => rng,
            None => {
                let key =
                    digest(b"bftsim/full-power/v1", &[self.seed, session.0, u64::from(round), u64::from(purpose)]);
                ChaCha8Rng::seed_from_u64(u64::from_be_bytes(first_eight(&key)))
            }
        }
    }

    /// Gives a stream back; beyond [`MAX_STREAMS`] those of the oldest sessions are dropped.
    pub(super) fn put(&mut self, session: SessionId, round: Round, purpose: u8, rng: ChaCha8Rng) {
        self.live.insert((session, round, purpose), rng);
        while self.live.len() > MAX_STREAMS {
            self.live.pop_first();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_stream_depends_only_on_its_key_and_its_own_draws() {
        let (mut a, mut b) = (Streams::new(7), Streams::new(7));
        // `b` draws from other streams in between: `a`'s and `b`'s (1, 2, 3) agree.
        let mut other = b.take(SessionId(0), 0, 1);
        let _: u64 = other.gen();
        b.put(SessionId(0), 0, 1, other);
        let mut x = a.take(SessionId(1), 2, 3);
        let mut y = b.take(SessionId(1), 2, 3);
        assert_eq!(x.gen::<u64>(), y.gen::<u64>());
        a.put(SessionId(1), 2, 3, x);
        b.put(SessionId(1), 2, 3, y);
        let (mut x, mut y) = (a.take(SessionId(1), 2, 3), b.take(SessionId(1), 2, 3));
        assert_eq!(x.gen::<u64>(), y.gen::<u64>(), "the stream continues where it was");
        let mut z = Streams::new(8).take(SessionId(1), 2, 3);
        let mut w = a.take(SessionId(1), 2, 4);
        assert_ne!(z.gen::<u64>(), w.gen::<u64>());
    }

    #[test]
    fn streams_are_bounded() {
        let mut s = Streams::new(1);
        for session in 0..(MAX_STREAMS as u64 * 2) {
            let rng = s.take(SessionId(session), 0, 0);
            s.put(SessionId(session), 0, 0, rng);
        }
        assert_eq!(s.len(), MAX_STREAMS);
        assert!(s.live.keys().all(|(session, _, _)| session.0 >= MAX_STREAMS as u64), "the oldest went first");
    }
}
