//! `bftsim reproduce SCHEDULE`: a `bftsim model` counterexample run in the simulator
//! (`sim::run::replay`), with the usual event lines, the violation, and the space-time diagram.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sim::model::schedule::{is_schedule, Schedule};
use sim::trace::TraceEvent;

use super::out::outln;
use super::{io, CliError};

/// The schedule at `path`, if the file is one (`None`: a scenario, or unreadable: the scenario
/// loader reports that).
pub(super) fn read_if_schedule(path: &Path) -> Result<Option<Schedule>, CliError> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(None) };
    if !is_schedule(&text) {
        return Ok(None);
    }
    Schedule::parse(&text, path).map(Some).map_err(|e| CliError::Input(e.to_string()))
}

/// Exit 1: the simulator violated the model's invariant (the counterexample replays); exit 2:
/// it did not (another invariant, none, or the simulator could not follow the schedule).
pub(super) fn cmd_replay(path: &Path, schedule: &Schedule, trace: Option<&Path>) -> Result<ExitCode, CliError> {
    outln!(
        "replaying the model schedule {} in the simulator: n = {}, byzantine = {}, mutation {}, votes {:?}, {} steps",
        path.display(),
        schedule.agents,
        schedule.byzantine,
        schedule.mutation,
        schedule.votes,
        schedule.steps.len()
    );
    let out = sim::run::replay(schedule).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    for event in &out.trace {
        if super::out::is_closed() {
            break;
        }
        outln!("{}", super::events::event_line(event));
    }
    super::events::print_sessions(&out.trace, &[]);
    let jsonl = trace_jsonl(&out.trace)?;
    if let Some(file) = trace {
        fs::write(file, &jsonl).map_err(io("cannot write", file))?;
        outln!("wrote {} events to {}", out.trace.len(), file.display());
    }
    if !out.extra_timers.is_empty() {
        let list: Vec<String> =
            out.extra_timers.iter().map(|(a, t)| format!("{a} {:?} round {}", t.kind, t.round)).collect();
        outln!(
            "note: timers the model does not schedule also fired (their re-sends were not delivered): {}",
            list.join(", ")
        );
    }
    if let Some((step, why)) = &out.divergence {
        outln!("REPLAY DIVERGED at step {step}: {why}");
    }
    let diagram = diagram_path(path);
    let svg = diagram_svg(&jsonl, schedule, out.violation.as_ref().map(|v| v.time_ms));
    fs::File::create(&diagram).and_then(|mut f| f.write_all(svg.as_bytes())).map_err(io("cannot write", &diagram))?;
    outln!("wrote the space-time diagram {}", diagram.display());
    outln!("{} of {} steps performed", out.steps_done, schedule.steps.len());
    match &out.violation {
        Some(v) => {
            outln!(
                "VIOLATION {} at step {} ({} ms): {}",
                v.invariant,
                v.step,
                v.time_ms,
                super::events::humanize(&v.detail)
            );
            if v.invariant == schedule.invariant {
                outln!("the simulator violates {}, as the model found", v.invariant);
                return Ok(ExitCode::from(1));
            }
            outln!("NOT REPRODUCED: the model found {}, the simulator {}", schedule.invariant, v.invariant);
        }
        None => outln!("NOT REPRODUCED: the model found {}, the simulator no violation", schedule.invariant),
    }
    Ok(ExitCode::from(2))
}

fn trace_jsonl(trace: &[TraceEvent]) -> Result<String, CliError> {
    let mut text = String::new();
    for e in trace {
        text.push_str(&serde_json::to_string(e).map_err(|e| CliError::Io(e.to_string()))?);
        text.push('\n');
    }
    Ok(text)
}

/// `cx.toml` → `cx.svg`, beside the schedule.
fn diagram_path(schedule: &Path) -> PathBuf {
    schedule.with_extension("svg")
}

fn diagram_svg(jsonl: &str, schedule: &Schedule, violation_ms: Option<u64>) -> String {
    let mut d = reports::spacetime::from_trace_jsonl(jsonl, "model schedule");
    let end = violation_ms.unwrap_or(schedule.steps.len() as u64 + schedule.agents as u64 + 1);
    d.window_ms = Some((0, end.max(1)));
    d.title = format!(
        "bftsim model counterexample replayed: {} ({} steps, mutation {}; time is the step, 1 ms each)",
        schedule.invariant,
        schedule.steps.len(),
        schedule.mutation
    );
    reports::spacetime::render_svg(&d)
}
