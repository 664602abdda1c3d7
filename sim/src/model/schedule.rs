//! A model counterexample as an ordinary artefact: a schedule file (TOML) that names the
//! model's setup and the ordered steps of the shortest path (deliveries, timer firings,
//! Byzantine sends), which `bftsim reproduce FILE` runs in the simulator (`run::script`).
//! Format: docs/model.md, "Counterexamples as schedules".
//!
//! Messages are written as the hex of their wire frame (`consensus_core::wire::encode`): the
//! simulator delivers exactly those bytes (a Byzantine message is signed with its agent's
//! key, which the schedule cannot be trusted to recompute), with a readable `what` beside them.

use std::path::Path;

use consensus_core::protocol::messages::Message;
use consensus_core::protocol::{Mutation, Timer, TimerKind};
use consensus_core::{wire, AgentId, TimeMs};
use serde::{Deserialize, Serialize};

use super::report::{describe_label, describe_message};
use super::{ByzantineMode, Counterexample, FirstProposer, Label, ModelConfig, Setup, Votes};

/// The `format` line every schedule starts with.
pub const FORMAT: &str = "bftsim-model-schedule/1";

/// A replayable schedule (the file's model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Always [`FORMAT`].
    pub format: String,
    /// Committee size.
    pub agents: u32,
    /// Byzantine agents (the highest ids).
    pub byzantine: u32,
    /// Rounds the model checked.
    pub rounds: u32,
    /// Candidates of the session.
    pub candidates: u32,
    /// Who proposes round 0: `honest` or `byzantine`.
    pub first_proposer: String,
    /// The protocol variant (kebab-case, `none` for the correct protocol).
    pub mutation: String,
    /// Each agent's candidate (the Byzantine agents' entries are unused).
    pub votes: Vec<u32>,
    /// The invariant the model found violated (the replay must violate the same).
    pub invariant: String,
    /// The model's words for the violation.
    pub detail: String,
    /// The steps after the initial state (every honest agent has the `Open` and voted).
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// One step of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `deliver` (an honest agent's message reaches `to`), `fire` (`agent`'s timer fires) or
    /// `inject` (Byzantine `from` sends `message` to `to`, which receives it at once).
    pub kind: String,
    /// For people: the step in words (not read back).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub what: String,
    /// deliver, inject: the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// deliver, inject: the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// deliver, inject: the wire frame, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// fire: whose timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<u32>,
    /// fire: the timer's kind (vote-collection, propose, prevote, precommit, deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerKind>,
    /// fire: the timer's round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// fire: the time on the agent's clock it fires at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<TimeMs>,
}

/// A step as the simulator performs it (validated).
#[derive(Clone, Debug)]
pub enum Action {
    /// Deliver the frame `from` sent to `to` (it must have been sent).
    Deliver {
        /// Sender.
        from: AgentId,
        /// Recipient.
        to: AgentId,
        /// The frame.
        frame: Vec<u8>,
        /// The message it decodes to.
        message: Message,
    },
    /// `agent`'s clock moves to `at_ms` and its `timer` fires.
    Fire {
        /// Whose.
        agent: AgentId,
        /// Which.
        timer: Timer,
        /// When, on its clock.
        at_ms: TimeMs,
    },
    /// Byzantine `from` sends the frame to `to`.
    Inject {
        /// Sender.
        from: AgentId,
        /// Recipient.
        to: AgentId,
        /// The frame.
        frame: Vec<u8>,
        /// The message it decodes to.
        message: Message,
    },
}

/// A schedule file that cannot be replayed: where and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct ScheduleError {
    /// The file.
    pub file: String,
    /// The line (1-based; the step's `[[step]]` header for a step's field).
    pub line: usize,
    /// What is wrong, naming the field, and the fix.
    pub message: String,
}

/// Whether `text` is a schedule file (its first non-comment line is the format line).
pub fn is_schedule(text: &str) -> bool {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).is_some_and(|l| {
        l.strip_prefix("format").is_some_and(|rest| rest.trim_start().starts_with('=') && rest.contains(FORMAT))
    })
}

impl Schedule {
    /// The schedule of a counterexample of `setup`'s check.
    pub fn of(setup: &Setup, cx: &Counterexample) -> Schedule {
        let c = &setup.config;
        let votes = match cx.path.first() {
            Some(Label::Init(v)) => v.clone(),
            _ => match &c.votes {
                Votes::Fixed(v) => v.clone(),
                Votes::Enumerate => vec![0; c.agents as usize],
            },
        };
        let steps = cx.path.iter().skip(1).map(step_of).collect();
        Schedule {
            format: FORMAT.to_owned(),
            agents: c.agents,
            byzantine: c.byzantine,
            rounds: c.rounds,
            candidates: c.candidates,
            first_proposer: match c.first_proposer {
                FirstProposer::Honest => "honest".into(),
                FirstProposer::Byzantine => "byzantine".into(),
            },
            mutation: mutation_name(c.mutation),
            votes,
            invariant: cx.violation.invariant.clone(),
            detail: cx.violation.detail.clone(),
            steps,
        }
    }

    /// The file text: a header saying how to replay it, then the TOML.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# A `bftsim model` counterexample ({} in {} steps), as a schedule the simulator replays:\n\
             #   bftsim reproduce THIS_FILE\n\
             # Format: docs/model.md, \"Counterexamples as schedules\". `what` is for people only.\n{body}",
            self.invariant,
            self.steps.len()
        )
    }

    /// Parses schedule text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Schedule, ScheduleError> {
        let file = path.display().to_string();
        let schedule: Schedule = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            ScheduleError { file: file.clone(), line, message: e.message().trim().to_owned() }
        })?;
        let err = |line: usize, message: String| ScheduleError { file: file.clone(), line, message };
        if schedule.format != FORMAT {
            return Err(err(field_line(text, "format"), format!("field `format`: expected \"{FORMAT}\"")));
        }
        schedule.setup().map_err(|m| err(1, m))?;
        schedule.actions().map_err(|(i, m)| err(step_line(text, i), format!("step {}: {m}", i + 1)))?;
        Ok(schedule)
    }

    /// The model setup the schedule was found in (keys, committee, session, spec).
    pub fn setup(&self) -> Result<Setup, String> {
        let mutation: Mutation =
            serde_json::from_value(serde_json::Value::String(self.mutation.clone())).map_err(|_| {
                format!("field `mutation`: `{}` is not a bundled mutation (docs/mutations.md)", self.mutation)
            })?;
        let first_proposer = match self.first_proposer.as_str() {
            "honest" => FirstProposer::Honest,
            "byzantine" => FirstProposer::Byzantine,
            other => return Err(format!("field `first_proposer`: `{other}`: expected \"honest\" or \"byzantine\"")),
        };
        let config = ModelConfig {
            agents: self.agents,
            byzantine: self.byzantine,
            rounds: self.rounds,
            candidates: self.candidates,
            votes: Votes::Fixed(self.votes.clone()),
            byzantine_mode: ByzantineMode::FullPower,
            first_proposer,
            mutation,
            ..ModelConfig::default()
        };
        Setup::new(config).map_err(|e| as_field(&e.to_string()))
    }

    /// The steps, validated: `Err((step index, message naming the field))`.
    pub fn actions(&self) -> Result<Vec<Action>, (usize, String)> {
        let setup = self.setup().map_err(|m| (0, m))?;
        let session = setup.session;
        self.steps.iter().enumerate().map(|(i, s)| s.action(&setup, session).map_err(|m| (i, m))).collect()
    }
}

impl Step {
    fn action(&self, setup: &Setup, session: consensus_core::SessionId) -> Result<Action, String> {
        let n = setup.config.agents;
        let agent = |field: &str, v: Option<u32>| -> Result<AgentId, String> {
            let id = v.ok_or_else(|| format!("field `{field}` is missing (an agent id below {n})"))?;
            if id >= n {
                return Err(format!("field `{field}`: agent {id} is not in the committee of {n} (0 to {})", n - 1));
            }
            Ok(AgentId(id))
        };
        let frame = || -> Result<(Vec<u8>, Message), String> {
            let hex = self.message.as_deref().ok_or("field `message` is missing (the frame in hex)")?;
            let bytes = from_hex(hex).ok_or("field `message`: not hex (two digits 0-9a-f per byte)")?;
            let message = wire::decode(&bytes).map_err(|e| format!("field `message`: not a message frame ({e:?})"))?;
            Ok((bytes, message))
        };
        match self.kind.as_str() {
            "deliver" | "inject" => {
                let (to, from) = (agent("to", self.to)?, agent("from", self.from)?);
                if setup.is_byzantine(to) {
                    return Err(format!("field `to`: agent {to} is Byzantine; only honest agents receive"));
                }
                let inject = self.kind == "inject";
                if inject != setup.is_byzantine(from) {
                    let who = if inject { "a Byzantine" } else { "an honest" };
                    return Err(format!("field `from`: `{}` needs {who} sender, {from} is not", self.kind));
                }
                let (frame, message) = frame()?;
                Ok(if inject {
                    Action::Inject { from, to, frame, message }
                } else {
                    Action::Deliver { from, to, frame, message }
                })
            }
            "fire" => {
                let agent = agent("agent", self.agent)?;
                let kind = self.timer.ok_or("field `timer` is missing (propose, prevote, precommit, ...)")?;
                let round = self.round.ok_or("field `round` is missing")?;
                let at_ms = self.at_ms.ok_or("field `at_ms` is missing (the time on the agent's clock)")?;
                if at_ms > MAX_AT_MS {
                    return Err(format!(
                        "field `at_ms`: {at_ms} is beyond {MAX_AT_MS} ms (a model's clocks stay within seconds)"
                    ));
                }
                Ok(Action::Fire { agent, timer: Timer { session, round, kind }, at_ms })
            }
            other => Err(format!("field `kind`: `{other}`: expected \"deliver\", \"fire\" or \"inject\"")),
        }
    }
}

/// The latest clock a `fire` step may name: far beyond any model's (its timeouts are seconds),
/// far below where the runners' timer arithmetic saturates.
const MAX_AT_MS: TimeMs = 1_000_000_000;

fn step_of(label: &Label) -> Step {
    let empty = Step {
        kind: String::new(),
        what: describe_label(label),
        to: None,
        from: None,
        message: None,
        agent: None,
        timer: None,
        round: None,
        at_ms: None,
    };
    match label {
        Label::Init(_) => empty,
        Label::Deliver { to, msg } | Label::Inject { to, msg } => Step {
            kind: if matches!(label, Label::Inject { .. }) { "inject" } else { "deliver" }.into(),
            what: describe_message(&msg.message),
            to: Some(to.0),
            from: Some(msg.from.0),
            message: Some(to_hex(&wire::encode(&msg.message))),
            ..empty
        },
        Label::Fire { agent, at_ms, timer } => Step {
            kind: "fire".into(),
            agent: Some(agent.0),
            timer: Some(timer.kind),
            round: Some(timer.round),
            at_ms: Some(*at_ms),
            ..empty
        },
    }
}

/// A setup error in the CLI's words (`--agents 20: ...`) in the file's (`field `agents`: 20: ...`).
fn as_field(message: &str) -> String {
    match message.strip_prefix("--").and_then(|m| m.split_once(' ')) {
        Some((name, rest)) => format!("field `{name}`: {rest}"),
        None => message.to_owned(),
    }
}

/// The kebab-case name of a mutation (as `--mutation` takes it).
pub fn mutation_name(m: Mutation) -> String {
    serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "none".into())
}

/// Lower-case hex (no crate needed for 10 lines; the frames are a few hundred bytes).
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of a top-level `field = ...`.
fn field_line(text: &str, field: &str) -> usize {
    text.lines().position(|l| l.trim_start().starts_with(field)).map_or(1, |i| i + 1)
}

/// The line of the `[[step]]` header of step `index` (0-based).
fn step_line(text: &str, index: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| l.trim() == "[[step]]").nth(index).map_or(1, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{check, ModelConfig};

    fn found() -> (Setup, Counterexample) {
        let config = ModelConfig {
            mutation: Mutation::QuorumOneShort,
            max_states: 20_000,
            ..ModelConfig::honest(3, 2, Votes::Fixed(vec![0, 0, 1]))
        };
        let setup = Setup::new(config).unwrap_or_else(|e| panic!("{e}"));
        let report = check(&setup);
        let cx = report.counterexample.unwrap_or_else(|| panic!("quorum-one-short is found at n = 3"));
        (setup, cx)
    }

    #[test]
    fn a_counterexample_round_trips_through_its_file() {
        let (setup, cx) = found();
        let schedule = Schedule::of(&setup, &cx);
        assert_eq!(schedule.steps.len(), cx.path.len() - 1);
        let text = schedule.to_text();
        assert!(is_schedule(&text), "{text}");
        let back = Schedule::parse(&text, Path::new("cx.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // `what` is written for people and read back as written.
        assert_eq!(back, schedule);
        assert_eq!(back.actions().map(|a| a.len()), Ok(schedule.steps.len()));
        assert!(!is_schedule("name = \"a scenario\"\n"));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let (setup, cx) = found();
        let text = Schedule::of(&setup, &cx).to_text();
        let p = Path::new("cx.toml");
        let second = step_line(&text, 1);
        let bad = |from: &str, to: &str, n: usize| -> ScheduleError {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let at = lines
                .iter()
                .skip(step_line(&text, n))
                .position(|l| l.starts_with(from))
                .map(|i| i + step_line(&text, n));
            let at = at.unwrap_or_else(|| panic!("no `{from}` in step {n}"));
            lines[at] = to.to_owned();
            Schedule::parse(&lines.join("\n"), p).err().unwrap_or_else(|| panic!("{to} was accepted"))
        };
        let e = bad("to = ", "to = 7", 1);
        assert_eq!(e.line, second, "{e}");
        assert!(
            e.message.contains("step 2") && e.message.contains("field `to`") && e.message.contains("agent 7"),
            "{e}"
        );
        let e = bad("to = ", "to = \"x\"", 1);
        assert!(e.line > second && e.to_string().starts_with("cx.toml:"), "{e}");
        let e = bad("message = ", "message = \"zz\"", 1);
        assert!(e.message.contains("field `message`"), "{e}");
        let e = bad("kind = ", "kind = \"drop\"", 1);
        assert!(e.message.contains("field `kind`") && e.message.contains("deliver"), "{e}");
        let e = Schedule::parse(&text.replace("mutation = \"quorum-one-short\"", "mutation = \"qos\""), p)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message.contains("field `mutation`"), "{e}");
        let e = Schedule::parse(&text.replace("[[step]]\n", "[[step]]\nspeed = 3\n"), p).err();
        assert!(e.is_some_and(|e| e.message.contains("speed")));
    }
}
