//! `bftsim reproduce`: replays one run and prints its events (filtered), a summary of the
//! rounds of each session, the violation if any, and with `--coverage` the protocol points its
//! honest agents reached.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use consensus_core::protocol::coverage::Point;
use reports::coverage::CoverageRecord;
use sim::run::{run, RunOptions};
use sim::trace::TraceEvent;

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
    /// reject, fault, open (repeat, or separate with commas).
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

const KINDS: [&str; 12] = [
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
    "open",
    "violation",
];

/// The longest event detail printed; longer ones end at a word boundary with "…".
const DETAIL_CHARS: usize = 110;

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

/// One event as a line: time, step, kind, who (`a3 → a1` for messages, the client as
/// `client`), session and a readable detail.
pub(super) fn event_line(e: &TraceEvent) -> String {
    let name = |a: Option<u32>| a.map_or_else(|| "client".to_owned(), |a| format!("a{a}"));
    let who = match e.kind.as_str() {
        // deliver: `agent` received from `peer`; send, drop, hold: `agent` sent to `peer`.
        "deliver" => format!("{} → {}", name(e.peer), name(e.agent)),
        "send" | "drop" | "hold" => format!("{} → {}", name(e.agent), name(e.peer)),
        "evidence" => format!("{} vs {}", name(e.agent), name(e.peer)),
        "reject" => format!("{} ✗ {}", name(e.agent), name(e.peer)),
        _ => e.agent.map_or_else(|| "-".to_owned(), |a| format!("a{a}")),
    };
    let session = e.session.map_or_else(String::new, |s| format!("s{s}"));
    let detail = match e.kind.as_str() {
        "timeout" => format!("{} timer", humanize(&e.detail)),
        _ => humanize(&e.detail),
    };
    format!(
        "{:>8} ms  #{:<6} {:<8} {:<16} {:<4} {}",
        e.time_ms,
        e.step,
        e.kind,
        who,
        session,
        clip(&detail, DETAIL_CHARS)
    )
}

/// What one session did, from its events.
#[derive(Default)]
struct SessionRounds {
    opened_ms: Option<u64>,
    max_round: Option<u64>,
    /// (time, agent, decided candidate or None, honest), in trace order.
    decisions: Vec<(u64, u32, Option<u32>, bool)>,
}

/// The summary of rounds per session: rounds reached and who decided what, when.
pub(super) fn print_sessions(trace: &[TraceEvent], only: &[u64]) {
    let mut sessions: BTreeMap<u64, SessionRounds> = BTreeMap::new();
    for e in trace {
        let Some(s) = e.session.filter(|s| only.is_empty() || only.contains(s)) else { continue };
        let entry = sessions.entry(s).or_default();
        match e.kind.as_str() {
            "open" => entry.opened_ms = entry.opened_ms.or(Some(e.time_ms)),
            "decide" => {
                entry.decisions.push((e.time_ms, e.agent.unwrap_or(u32::MAX), e.value, e.honest != Some(false)))
            }
            _ => {}
        }
        if let Some(round) = round_of(&e.detail) {
            entry.max_round = Some(entry.max_round.map_or(round, |r| r.max(round)));
        }
    }
    if sessions.is_empty() {
        return;
    }
    outln!("\nsessions (rounds reached; decisions as agent@ms, * = Byzantine):");
    for (s, r) in &sessions {
        let opened = r.opened_ms.map_or_else(|| "not opened".to_owned(), |t| format!("opened {t} ms"));
        let rounds = r.max_round.map_or_else(|| "no round".to_owned(), |m| format!("max round {m}"));
        let mut by_value: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
        for (time, agent, value, honest) in &r.decisions {
            let mark = if *honest { "" } else { "*" };
            by_value.entry(*value).or_default().push(format!("a{agent}{mark}@{time}"));
        }
        let decided: Vec<String> = by_value
            .iter()
            .map(|(value, who)| {
                let what = value.map_or_else(|| "no candidate".to_owned(), |v| format!("candidate-{v}"));
                format!("{what}: {}", who.join(" "))
            })
            .collect();
        let decided = if decided.is_empty() { "undecided".to_owned() } else { decided.join("; ") };
        outln!("  s{s:<4} {opened:<16} {rounds:<12} {decided}");
    }
}

/// The round an event detail names (`round 3`, `round Some(3)`), if any.
fn round_of(detail: &str) -> Option<u64> {
    let rest = &detail[detail.find("round ")? + "round ".len()..];
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rewrites the Rust debug forms event details carry into plain text: `CandidateId(2)` →
/// `candidate-2`, `AgentId(1)` → `a1`, `agent-1` → `a1`, `Ppm(1000000)` → `100%`,
/// `Some("05f61e312cd7097b")` → `value 05f61e31…`, `None` → `nil`, `Decided { chosen: …,
/// method: Threshold, agreement: …, byzantine: [] }` → `candidate-2 by threshold (agreement
/// 100%)`, and a long `Variant { … }` (evidence, rejections) to its variant name in words.
pub(super) fn humanize(detail: &str) -> String {
    let mut text = detail.to_owned();
    if let Some(brace) = text.find(" { ") {
        // A large debug struct (evidence, rejections): its variant name says what it is.
        let head = &text[..brace];
        if text.len() > DETAIL_CHARS && head != "Decided" && head.chars().all(char::is_alphanumeric) {
            text = words(head);
        }
    }
    // A leading CamelCase name (`BadSignature`, `VoteCollection round 0`) reads as words.
    let head_len = text.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(text.len());
    if text[..head_len].chars().filter(char::is_ascii_uppercase).count() >= 2 {
        let head = words(&text[..head_len]);
        text.replace_range(..head_len, &head);
    }
    let mut from = 0;
    while let Some(start) = text[from..].find("Decided { chosen: ").map(|i| from + i) {
        let Some(len) = text[start..].find(" }") else { break };
        let inner = text[start + "Decided { ".len()..start + len].to_owned();
        let field =
            |name: &str| inner.split(", ").find_map(|f| f.strip_prefix(name)).map(str::to_owned).unwrap_or_default();
        let flagged = field("byzantine: ");
        let flagged =
            if flagged == "[]" || flagged.is_empty() { String::new() } else { format!(", flagged {flagged}") };
        let replacement = format!(
            "{} by {} (agreement {}{flagged})",
            field("chosen: "),
            words(&field("method: ")),
            field("agreement: ")
        );
        text.replace_range(start..start + len + 2, &replacement);
        from = start + replacement.len();
    }
    text = rewrite_calls(&text, "CandidateId(", |n| format!("candidate-{n}"));
    text = rewrite_calls(&text, "AgentId(", |n| format!("a{n}"));
    text = rewrite_calls(&text, "SessionId(", |n| format!("s{n}"));
    text = rewrite_calls(&text, "Ppm(", |n| {
        let ppm: u64 = n.parse().unwrap_or(0);
        if ppm % 10_000 == 0 {
            format!("{}%", ppm / 10_000)
        } else {
            format!("{:.1}%", ppm as f64 / 10_000.0)
        }
    });
    text = rewrite_calls(&text, "Some(\"", |hex| format!("value {}…", &hex[..hex.len().min(8)]));
    text = rewrite_calls(&text, "Some(", str::to_owned);
    text = text.replace("agent-", "a").replace("for None", "for nil").replace("round None", "no round");
    text.replace(" (Normal mode)", "").replace(" (Fallback mode)", " (fallback mode)")
}

/// Replaces every `prefix` + `arg` + `)` (an argument without parentheses) by `f(arg)`; a
/// closing quote before the parenthesis is dropped with it.
fn rewrite_calls(text: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        let after = &rest[start + prefix.len()..];
        let Some(end) = after.find(')').filter(|end| !after[..*end].contains('(')) else {
            out.push_str(&rest[..start + prefix.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..start]);
        out.push_str(&f(after[..end].trim_end_matches('"')));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `EarlyUnanimous` → `early unanimous`.
fn words(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `text` up to `max` characters, cut at a word boundary (never inside a word) with "…".
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let end = cut.rfind(' ').filter(|&i| i > 0).unwrap_or(cut.len());
    format!("{} …", cut[..end].trim_end_matches([',', ';', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_round_votes_read_as_text() {
        let decide = "Decided { chosen: CandidateId(2), method: EarlyUnanimous, agreement: Ppm(1000000), byzantine: [] } in round Some(1) (Normal mode)";
        assert_eq!(humanize(decide), "candidate-2 by early unanimous (agreement 100%) in round 1");
        let flagged =
            "Decided { chosen: CandidateId(0), method: Threshold, agreement: Ppm(750000), byzantine: [AgentId(3)] }";
        assert_eq!(humanize(flagged), "candidate-0 by threshold (agreement 75%, flagged [a3])");
        let both = format!("a2 decided {decide} but a1 decided {flagged}");
        assert_eq!(
            humanize(&both),
            "a2 decided candidate-2 by early unanimous (agreement 100%) in round 1 but a1 decided \
             candidate-0 by threshold (agreement 75%, flagged [a3])"
        );
        assert_eq!(
            humanize("Prevote round 2 by agent-3 for Some(\"3f9c1e312cd7097b\")"),
            "Prevote round 2 by a3 for value 3f9c1e31…"
        );
        assert_eq!(humanize("Precommit round 0 by agent-1 for None"), "Precommit round 0 by a1 for nil");
        assert_eq!(humanize("vote of agent-4 for candidate-2"), "vote of a4 for candidate-2");
        assert_eq!(humanize("BadSignature"), "bad signature");
        assert_eq!(humanize("UnknownSession(SessionId(3))"), "unknown session(s3)");
        assert_eq!(humanize("VoteCollection round 0"), "vote collection round 0");
        assert_eq!(round_of("Prevote round 12 by a1"), Some(12));
        assert_eq!(round_of("x in round Some(3) (Normal mode)"), Some(3));
        assert_eq!(round_of("open 3 candidates"), None);
    }

    #[test]
    fn long_debug_structs_become_their_variant_name() {
        let evidence = format!("ConflictingVotes {{ first: SignedVote {{ vote: {} }} }}", "x".repeat(200));
        assert_eq!(humanize(&evidence), "conflicting votes");
        // Malformed or unbalanced input is left alone, never a panic.
        for odd in ["CandidateId(", "Ppm(x)", "Decided { chosen: ", "Some(\"", "round ", ""] {
            let _ = humanize(odd);
            let _ = round_of(odd);
        }
        assert_eq!(humanize("Ppm(x)"), "0%");
    }

    #[test]
    fn clipping_never_cuts_a_word() {
        let text = "alpha beta gamma delta";
        assert_eq!(clip(text, 100), text);
        assert_eq!(clip(text, 13), "alpha beta …");
        assert_eq!(clip("unbreakable", 4), "unbr …");
        assert!(clip(&"é ".repeat(100), 11).ends_with('…'));
    }
}
