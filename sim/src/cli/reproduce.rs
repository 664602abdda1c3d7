//! `bftsim reproduce`: replays one run and prints its events (filtered), a summary of the
//! rounds of each session, the violation if any, and with `--coverage` the protocol points its
//! honest agents reached.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use consensus_core::protocol::coverage::Point;
use reports::coverage::CoverageRecord;
use sim::run::{run, RunOptions};
use sim::trace::TraceEvent;

use super::events::{event_line, humanize, print_sessions};
use super::out::outln;
use super::point::PointArgs;
use super::{io, CliError};

/// The options of `bftsim reproduce`.
#[derive(Args)]
pub(super) struct ReproduceArgs {
    /// The scenario, the seed and the sweep point.
    #[command(flatten)]
    point: PointArgs,
    /// Write every event (unfiltered) as JSON lines to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print at most this many events (the violation is always printed).
    #[arg(long, default_value_t = 400)]
    limit: usize,
    /// Only events of this session (repeat for several).
    #[arg(long)]
    session: Vec<u64>,
    /// Only events at this agent or with it as the other end (repeat for several).
    #[arg(long)]
    agent: Vec<u32>,
    /// Only events of this kind: send, deliver, drop, hold, timeout, vote, decide, evidence,
    /// reject, fault, compact, open (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Only events at or after this simulated time (ms).
    #[arg(long, value_name = "MS")]
    from: Option<u64>,
    /// Only events at or before this simulated time (ms).
    #[arg(long, value_name = "MS")]
    to: Option<u64>,
    /// List the protocol rules, checks, rejections and states the run's honest agents reached,
    /// and those they did not (docs/coverage.md).
    #[arg(long)]
    coverage: bool,
}

const KINDS: [&str; 13] = [
    "send",
    "deliver",
    "drop",
    "hold",
    "timeout",
    "vote",
    "decide",
    "evidence",
    "reject",
    "fault",
    "compact",
    "open",
    "violation",
];

pub(super) fn cmd_reproduce(args: ReproduceArgs) -> Result<ExitCode, CliError> {
    if let Some(kind) = args.kind.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(CliError::Usage(format!("--kind {kind}: expected one of {}", KINDS.join(", "))));
    }
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            return Err(CliError::Usage(format!("--from {from} is after --to {to}")));
        }
    }
    if let Some(schedule) = super::schedule::read_if_schedule(&args.point.scenario)? {
        return super::schedule::cmd_replay(&args.point.scenario, &schedule, args.trace.as_deref());
    }
    let (labels, point) = args.point.load("reproduce")?;
    let output = run(&point, args.point.seed()?, labels.into_iter().collect(), RunOptions { trace: true });
    let matching: Vec<&TraceEvent> = output.trace.iter().filter(|e| args.matches(e)).collect();
    for event in matching.iter().take(args.limit) {
        if super::out::is_closed() {
            break;
        }
        outln!("{}", event_line(event));
    }
    if matching.len() > args.limit {
        outln!(
            "... {} more matching events (raise --limit, narrow the filters, or use --trace FILE)",
            matching.len() - args.limit
        );
    }
    if matching.is_empty() {
        outln!("no event matches the filters ({} events in the run)", output.trace.len());
    }
    if let Some(file) = &args.trace {
        let mut w = BufWriter::new(File::create(file).map_err(io("cannot create", file))?);
        for event in &output.trace {
            let line = serde_json::to_string(event).map_err(|e| CliError::Io(e.to_string()))?;
            writeln!(w, "{line}").map_err(io("cannot write", file))?;
        }
        w.flush().map_err(io("cannot write", file))?;
        outln!("wrote {} events to {}", output.trace.len(), file.display());
    }
    print_sessions(&output.trace, &args.session);
    let r = &output.record;
    let p99 = if r.counts.decided == 0 { "—".to_owned() } else { format!("{} ms", r.latency_ms.p99) };
    outln!(
        "\n{} seed {}: {}; {} of {} sessions decided ({} correct), p99 {p99}, {} messages sent",
        r.scenario,
        r.seed,
        serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        r.counts.decided,
        r.counts.sessions,
        r.counts.correct,
        r.messages.sent
    );
    for v in &r.violations {
        outln!("VIOLATION {} at step {} ({} ms): {}", v.invariant, v.step, v.time_ms, humanize(&v.detail));
    }
    outln!("trace_hash {}", r.trace_hash);
    if args.coverage {
        print_coverage(r.coverage.as_ref());
    }
    Ok(if r.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `--coverage`: the points reached and not reached, by name, a few to a line.
fn print_coverage(coverage: Option<&CoverageRecord>) {
    let Some(coverage) = coverage else {
        outln!("coverage: this run recorded none");
        return;
    };
    let reached = match coverage.points() {
        Ok(points) => points,
        Err(e) => {
            outln!("coverage: {e}");
            return;
        }
    };
    let missed: Vec<Point> = Point::ALL.iter().copied().filter(|p| !reached.contains(p)).collect();
    outln!(
        "\ncoverage (point table version {}): {} of {} points reached by the honest agents",
        coverage.version,
        reached.len(),
        Point::COUNT
    );
    for (title, points) in [("reached", &reached), ("not reached", &missed)] {
        outln!("{title}:");
        for line in points.chunks(6) {
            outln!("  {}", line.iter().map(|p| p.name()).collect::<Vec<_>>().join("  "));
        }
    }
}

impl ReproduceArgs {
    fn matches(&self, e: &TraceEvent) -> bool {
        let session = self.session.is_empty() || e.session.is_some_and(|s| self.session.contains(&s));
        let agent = self.agent.is_empty()
            || e.agent.is_some_and(|a| self.agent.contains(&a))
            || e.peer.is_some_and(|p| self.agent.contains(&p));
        let kind = self.kind.is_empty() || self.kind.contains(&e.kind);
        let from = self.from.is_none_or(|from| e.time_ms >= from);
        let to = self.to.is_none_or(|to| e.time_ms <= to);
        session && agent && kind && from && to
    }
}
