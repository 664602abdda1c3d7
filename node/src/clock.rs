//! The real clock: milliseconds since the Unix epoch, read monotonically.
//!
//! Sessions carry the opener's `opened_ms` and every agent measures the deadline from it, so
//! agents need a shared time base: the wall clock. Within one process it is read as the wall
//! clock at start plus a monotonic `Instant`, so it never goes backwards.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consensus_core::runner::Clock;
use consensus_core::TimeMs;

/// Wall-clock milliseconds, monotonic within the process.
#[derive(Clone, Copy, Debug)]
pub struct RealClock {
    start: Instant,
    start_ms: TimeMs,
}

impl RealClock {
    /// A clock anchored at the current wall-clock time.
    pub fn new() -> RealClock {
        let start_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as TimeMs);
        RealClock { start: Instant::now(), start_ms }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now_ms(&self) -> TimeMs {
        self.start_ms.saturating_add(self.start.elapsed().as_millis() as TimeMs)
    }

    fn sleep_until(&self, at_ms: TimeMs) -> impl Future<Output = ()> {
        let offset = Duration::from_millis(at_ms.saturating_sub(self.start_ms));
        tokio::time::sleep_until((self.start + offset).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_until_the_requested_time() {
        let clock = RealClock::new();
        let t0 = clock.now_ms();
        clock.sleep_until(t0 + 20).await;
        assert!(clock.now_ms() >= t0 + 20);
        // A time in the past completes at once.
        clock.sleep_until(t0).await;
    }
}
