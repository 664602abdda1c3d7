//! The runner over the in-memory transport: decisions per second and messages and bytes per
//! session for 5 agents in the normal case (issue: "a benchmark, not a test").
//!
//! `cargo bench -p consensus-core --bench runner`

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::Instant;

use harness::{run, Setup};

// A benchmark measures wall-clock time; the library itself never reads a clock.
#[allow(clippy::disallowed_methods)]
fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot build a tokio runtime: {e}");
            return;
        }
    };
    let sessions = 400u64;
    let mut rates = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        let outcome = runtime.block_on(run(Setup::new(5, sessions)));
        let wall = started.elapsed().as_secs_f64();
        outcome.assert_safe();
        outcome.assert_live(sessions);
        rates.push(outcome.log.decisions.len() as f64 / wall);
        last = Some(outcome);
    }
    rates.sort_by(f64::total_cmp);
    let Some(outcome) = last else { return };
    let per_session = |x: u64| x as f64 / sessions as f64;
    println!("runner, 5 honest agents, in-memory transport, {sessions} sequential sessions, 5 repetitions");
    println!("  decisions per second (median): {:.0}  (sessions per second: {:.0})", rates[2], rates[2] / 5.0);
    println!(
        "  per session: {:.1} messages, {:.0} bytes",
        per_session(outcome.log.messages),
        per_session(outcome.log.bytes)
    );
    for (kind, (count, bytes)) in &outcome.log.per_kind {
        println!("    {kind:<10} {:>6.1} messages {:>8.0} bytes", per_session(*count), per_session(*bytes));
    }
}
