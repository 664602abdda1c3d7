//! Space-time diagrams of one run: what every agent sent, received, decided, and when.
//!
//! [`render_svg`] draws a [`Diagram`] as one self-contained SVG (no fonts, scripts or URLs;
//! hover titles on every mark). Agents are horizontal lanes, simulated time runs left to right
//! with an axis in ms, and:
//!
//! - a delivered message is a thin arrow from its send time on the sender's lane to its
//!   delivery time on the receiver's lane, coloured by message kind (open, vote, proposal,
//!   prevote, precommit, commit, other);
//! - a dropped message is a dashed line from its send time towards the receiver's lane that
//!   ends in an x at the time it was lost;
//! - a timeout is a short grey tick on its agent's lane; the first event of each round after
//!   the first draws a dotted line across all lanes labelled `round r`;
//! - local votes are small circles, proposals/prevotes/precommits that are events of an agent
//!   (not messages) are small squares in their kind's colour, locks are triangles labelled
//!   `lock …`, decisions are diamonds labelled with their label;
//! - faults are shaded bands: a crash (or clog of one agent) shades that agent's lane until its
//!   restart (or unclog), a partition (or clog without agent) shades every lane until the heal;
//! - the violation is a red vertical line at its time (a red ring on its agent's lane when it
//!   has one) with its text, wrapped at spaces, above the lanes.
//!
//! # What each field means
//!
//! [`DiagramEvent`] is one event of a run, as the simulator's trace records it:
//!
//! | kind | `agent` | `peer` | `matched_send_ms` |
//! |---|---|---|---|
//! | [`EventKind::Send`] | sender | receiver | – (sends are drawn by their delivery or drop) |
//! | [`EventKind::Deliver`] | receiver | sender | when it was sent (no arrow without it: a tick on the receiver's lane) |
//! | [`EventKind::Drop`] | sender | intended receiver | when it was sent (else the drop time) |
//! | [`EventKind::Fault`] | the agent for crash/restart/clog, else `None` | – | – |
//! | any other | the agent it happens at (`None`: the client or the network) | – | – |
//!
//! `label` is the event's text, shown on hover and next to locks, decisions and faults. For
//! messages its first word names the message kind unless `message` is set (`open`, `vote`,
//! `proposal`, `prevote`, `precommit`, `commit`, anything else is "other"), which matches the
//! simulator's trace details (`"Prevote round 0 by 2 for …"`). For faults its first word is the
//! fault kind (`partition`, `heal`, `crash`, `restart`, `clog`, `unclog`), as in a scenario
//! file. `session` and `round` are the protocol's; [`Diagram::session`] keeps only the events
//! of one session (events without a session, such as faults, are always kept).
//! [`Diagram::window_ms`] keeps only events in `[from, to]` (by their own time; an arrow whose
//! send is before the window starts at its left edge).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One agent's lane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lane {
    /// The agent id, as in [`DiagramEvent::agent`].
    pub id: u32,
    /// Shown left of the lane, e.g. `agent 2 (byzantine, equivocate)`.
    pub label: String,
    /// Honest agents' lanes are plain; Byzantine agents' lanes are tinted and labelled in red.
    pub honest: bool,
}

/// What an event is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// A message handed to the network.
    Send,
    /// A message that reached its receiver.
    Deliver,
    /// A message lost (drop, partition, clog, crashed receiver).
    Drop,
    /// A message held by a clog (drawn as a tick).
    Hold,
    /// A protocol timer fired.
    Timeout,
    /// An agent's own vote on the candidates.
    Vote,
    /// An agent proposed (as an event, not a message).
    Propose,
    /// An agent prevoted.
    Prevote,
    /// An agent precommitted.
    Precommit,
    /// An agent locked a value.
    Lock,
    /// An agent decided.
    Decide,
    /// A fault of the scenario (partition, heal, crash, restart, clog, unclog).
    Fault,
    /// The client opened a session.
    Open,
    /// Equivocation evidence or a rejected message.
    Evidence,
    /// Anything else (drawn as a small dot).
    #[default]
    Other,
}

/// The kind of a message, which gives its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageKind {
    /// The client's `Open`.
    Open,
    /// An agent's vote on the candidates.
    Vote,
    /// A round's proposal.
    Proposal,
    /// A prevote.
    Prevote,
    /// A precommit.
    Precommit,
    /// A commit certificate.
    Commit,
    /// Anything else (sync, catch-up).
    Other,
}

impl MessageKind {
    const ALL: [MessageKind; 7] = [
        MessageKind::Open,
        MessageKind::Vote,
        MessageKind::Proposal,
        MessageKind::Prevote,
        MessageKind::Precommit,
        MessageKind::Commit,
        MessageKind::Other,
    ];

    /// The kind named by the first word of `label` (case-insensitive).
    pub fn from_label(label: &str) -> MessageKind {
        let word = label.split(|c: char| !c.is_ascii_alphanumeric()).find(|w| !w.is_empty()).unwrap_or("");
        match word.to_ascii_lowercase().as_str() {
            "open" => MessageKind::Open,
            "vote" => MessageKind::Vote,
            "proposal" | "propose" => MessageKind::Proposal,
            "prevote" => MessageKind::Prevote,
            "precommit" => MessageKind::Precommit,
            "commit" => MessageKind::Commit,
            _ => MessageKind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MessageKind::Open => "open",
            MessageKind::Vote => "vote",
            MessageKind::Proposal => "proposal",
            MessageKind::Prevote => "prevote",
            MessageKind::Precommit => "precommit",
            MessageKind::Commit => "commit",
            MessageKind::Other => "other",
        }
    }

    /// Okabe–Ito colours, readable with colour-blindness.
    fn color(self) -> &'static str {
        match self {
            MessageKind::Open => "#56B4E9",
            MessageKind::Vote => "#009E73",
            MessageKind::Proposal => "#0072B2",
            MessageKind::Prevote => "#E69F00",
            MessageKind::Precommit => "#CC79A7",
            MessageKind::Commit => "#000000",
            MessageKind::Other => "#999999",
        }
    }
}

/// One event of the run (see the [module documentation](self) for what each field means).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiagramEvent {
    /// Simulated time.
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The agent it happens at (receiver of a delivery, sender of a send or drop).
    pub agent: Option<u32>,
    /// The other end of a message.
    pub peer: Option<u32>,
    /// The vote session.
    pub session: Option<u64>,
    /// The protocol round.
    pub round: Option<u32>,
    /// The event's text.
    pub label: String,
    /// Deliveries and drops: when the message was sent.
    pub matched_send_ms: Option<u64>,
    /// The message kind, when the label does not start with it.
    pub message: Option<MessageKind>,
}

impl DiagramEvent {
    fn message_kind(&self) -> MessageKind {
        self.message.unwrap_or_else(|| MessageKind::from_label(&self.label))
    }
}

/// A run to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagram {
    /// Shown above the diagram.
    pub title: String,
    /// One lane per agent, top to bottom in this order.
    pub agents: Vec<Lane>,
    /// The events, in any order.
    pub events: Vec<DiagramEvent>,
    /// The violation: time, agent (if it is one agent's), text.
    pub violation: Option<(u64, Option<u32>, String)>,
    /// Only events within `[from, to]` ms.
    pub window_ms: Option<(u64, u64)>,
    /// Only events of this session (and events of no session).
    pub session: Option<u64>,
}

mod labels;
mod marks;
mod trace;

pub use trace::from_trace_jsonl;

use labels::{Labels, Spot};
use marks::{cross, fault_bands, markers, messages, rounds, violation};
pub use trace::SECOND_COPY;

/// Pixel layout.
const WIDTH: f64 = 1400.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 30.0;
const LANE_H: f64 = 64.0;
const LEGEND_H: f64 = 64.0;
const AXIS_H: f64 = 46.0;
const FONT: &str = "font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\"";
const VIOLATION_RED: &str = "#CC0000";
/// The width of a character, in em, that text boxes are reckoned with: DejaVu Sans's average
/// advance is about 0.55 em (digits 0.64), so 0.62 errs on the wide side; bold text 0.68.
const CHAR_EM: f64 = 0.62;
const BOLD_EM: f64 = 0.68;
/// Characters per line of the violation text (12 px bold, from `LEFT` to the right margin).
const WRAP: usize = ((WIDTH - LEFT - 12.0) / (12.0 * BOLD_EM)) as usize;
/// Characters per line of the title (16 px bold): longer titles wrap rather than run off the
/// diagram.
const TITLE_WRAP: usize = ((WIDTH - 24.0) / (16.0 * BOLD_EM)) as usize;
/// Characters per line of a lane label (12 px, right-aligned left of the lanes); two lines at most.
const LANE_LABEL_WRAP: usize = ((LEFT - 16.0) / (12.0 * CHAR_EM)) as usize;

/// Draws `diagram` as an SVG document.
pub fn render_svg(diagram: &Diagram) -> String {
    let mut events = visible_events(diagram);
    let (t0, t1) = time_range(diagram, &events);
    // Bookkeeping outside the shown span (other sessions' evidence, late faults) is left out.
    events.retain(|e| (t0..=t1).contains(&e.time_ms));
    let lanes: BTreeMap<u32, usize> = diagram.agents.iter().enumerate().map(|(i, l)| (l.id, i)).collect();
    let violation_lines =
        diagram.violation.as_ref().map(|(_, _, text)| wrap(&format!("violation: {text}"), WRAP)).unwrap_or_default();
    let title_lines = wrap(&diagram.title, TITLE_WRAP);
    let title_h = 20.0 * title_lines.len().saturating_sub(1) as f64;
    let top = 34.0 + title_h + LEGEND_H + 16.0 * violation_lines.len() as f64 + 20.0;
    let height = top + LANE_H * diagram.agents.len().max(1) as f64 + AXIS_H;
    let frame = Frame { t0, t1, top, lanes };
    let mut labels = Labels::default();
    let mut svg = String::with_capacity(4096 + 400 * events.len());
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         {FONT} font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    );
    defs(&mut svg);
    for (i, line) in title_lines.iter().enumerate() {
        let y = 22.0 + 20.0 * i as f64;
        let _ = writeln!(svg, "<text x=\"12\" y=\"{y}\" font-size=\"16\" font-weight=\"bold\">{}</text>", esc(line));
    }
    legend(&mut svg, 12.0, 44.0 + title_h);
    lanes_svg(&mut svg, diagram, &frame);
    // The violation's text is placed first: every other label keeps clear of it.
    let violation_top = frame.top - 16.0 * violation_lines.len() as f64 - 16.0;
    for (i, line) in violation_lines.iter().enumerate() {
        labels.reserve(line, 12.0, true, LEFT, violation_top + 16.0 * i as f64);
    }
    fault_bands(&mut svg, &events, &frame, diagram.agents.len(), &mut labels);
    axis(&mut svg, &frame, diagram.agents.len());
    rounds(&mut svg, &events, &frame, diagram.agents.len(), &mut labels);
    messages(&mut svg, &events, &frame);
    markers(&mut svg, &events, &frame, &mut labels);
    if let Some((time_ms, agent, _)) = &diagram.violation {
        violation(&mut svg, *time_ms, *agent, &violation_lines, &frame, diagram.agents.len());
    }
    svg.push_str("</svg>\n");
    svg
}

/// Maps time and agents to pixels.
struct Frame {
    t0: u64,
    t1: u64,
    top: f64,
    lanes: BTreeMap<u32, usize>,
}

impl Frame {
    fn x(&self, t: u64) -> f64 {
        let span = (self.t1.saturating_sub(self.t0)).max(1) as f64;
        let t = t.clamp(self.t0, self.t1);
        LEFT + (t - self.t0) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn lane_y(&self, agent: Option<u32>) -> Option<f64> {
        let index = *self.lanes.get(&agent?)?;
        Some(self.top + LANE_H * index as f64 + LANE_H / 2.0)
    }

    fn bottom(&self, lanes: usize) -> f64 {
        self.top + LANE_H * lanes.max(1) as f64
    }
}

fn visible_events(diagram: &Diagram) -> Vec<&DiagramEvent> {
    let mut events: Vec<&DiagramEvent> = diagram
        .events
        .iter()
        .filter(|e| match (diagram.session, e.session) {
            (Some(wanted), Some(s)) => wanted == s,
            _ => true,
        })
        .filter(|e| diagram.window_ms.is_none_or(|(from, to)| (from..=to).contains(&e.time_ms)))
        .collect();
    events.sort_by_key(|e| (e.time_ms, e.kind));
    events
}

/// The time axis: the window, else the events' span (and the violation), padded by 2%.
fn time_range(diagram: &Diagram, events: &[&DiagramEvent]) -> (u64, u64) {
    if let Some((from, to)) = diagram.window_ms {
        return (from, to.max(from + 1));
    }
    // With one session shown, its own events set the span (not faults or other bookkeeping).
    let own = |e: &&&DiagramEvent| diagram.session.is_none() || e.session.is_some();
    let times = events
        .iter()
        .filter(own)
        .flat_map(|e| [Some(e.time_ms), e.matched_send_ms])
        .flatten()
        .chain(diagram.violation.as_ref().map(|v| v.0));
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo > hi {
        return (0, 1);
    }
    let pad = ((hi - lo) / 50).max(1);
    (lo.saturating_sub(pad), hi.saturating_add(pad))
}

fn defs(svg: &mut String) {
    svg.push_str("<defs>\n");
    for kind in MessageKind::ALL {
        let _ = writeln!(
            svg,
            "<marker id=\"head-{}\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"6\" markerHeight=\"6\" \
             orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"{}\"/></marker>",
            kind.name(),
            kind.color()
        );
    }
    svg.push_str("</defs>\n");
}

fn legend(svg: &mut String, x0: f64, y0: f64) {
    let mut x = x0;
    for kind in MessageKind::ALL {
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"{c}\" stroke-width=\"2\" marker-end=\"url(#head-{n})\"/>\
             <text x=\"{}\" y=\"{}\">{n}</text>",
            x + 24.0,
            x + 30.0,
            y0 + 4.0,
            c = kind.color(),
            n = kind.name()
        );
        x += 44.0 + 7.5 * kind.name().len() as f64;
    }
    let y = y0 + 24.0;
    let items: [(&str, String); 7] = [
        (
            "dropped message",
            format!(
                "<line x1=\"0\" y1=\"0\" x2=\"22\" y2=\"0\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>{}",
                cross(22.0, 0.0, "#555")
            ),
        ),
        ("timeout", "<line x1=\"10\" y1=\"-8\" x2=\"10\" y2=\"8\" stroke=\"#777\" stroke-width=\"2\"/>".to_owned()),
        ("own vote", "<circle cx=\"10\" cy=\"0\" r=\"4\" fill=\"#009E73\"/>".to_owned()),
        ("lock", "<path d=\"M4,5 L10,-6 L16,5 z\" fill=\"#444\"/>".to_owned()),
        ("decision", "<path d=\"M10,-7 L17,0 L10,7 L3,0 z\" fill=\"#0072B2\" stroke=\"#000\"/>".to_owned()),
        (
            "fault (crash, partition, clog)",
            "<rect x=\"0\" y=\"-7\" width=\"22\" height=\"14\" fill=\"#F0E442\" fill-opacity=\"0.45\"/>".to_owned(),
        ),
        (
            "violation",
            format!("<line x1=\"10\" y1=\"-8\" x2=\"10\" y2=\"8\" stroke=\"{VIOLATION_RED}\" stroke-width=\"3\"/>"),
        ),
    ];
    let mut x = x0;
    for (name, mark) in items {
        let _ = writeln!(svg, "<g transform=\"translate({x},{y})\">{mark}<text x=\"32\" y=\"4\">{name}</text></g>");
        x += 52.0 + 7.0 * name.len() as f64;
    }
}

fn lanes_svg(svg: &mut String, diagram: &Diagram, frame: &Frame) {
    for (i, lane) in diagram.agents.iter().enumerate() {
        let y = frame.top + LANE_H * i as f64;
        let (fill, ink) = if lane.honest { ("#ffffff", "#1d1d1f") } else { ("#FBEDEA", "#B03A00") };
        // The label in at most two lines that fit left of the lanes.
        let mut lines = wrap(&lane.label, LANE_LABEL_WRAP);
        if lines.len() > 2 {
            let rest = lines[1..].join(" ");
            lines = vec![lines[0].clone(), fit(&rest, LANE_LABEL_WRAP)];
        }
        let lines: Vec<String> = lines.iter().map(|l| fit(l, LANE_LABEL_WRAP)).collect();
        let first = y + LANE_H / 2.0 + 4.0 - 7.0 * lines.len().saturating_sub(1) as f64;
        let texts: String = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                format!(
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{ink}\">{}</text>",
                    LEFT - 8.0,
                    first + 14.0 * i as f64,
                    esc(line)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            "<g class=\"lane\" data-agent=\"{id}\"><rect x=\"{LEFT}\" y=\"{y}\" width=\"{w}\" height=\"{LANE_H}\" fill=\"{fill}\" \
             stroke=\"#e4e4e4\"/><line x1=\"{LEFT}\" y1=\"{cy}\" x2=\"{x2}\" y2=\"{cy}\" stroke=\"#bbbbbb\"/>{texts}</g>",
            id = lane.id,
            w = WIDTH - LEFT - RIGHT,
            cy = y + LANE_H / 2.0,
            x2 = WIDTH - RIGHT,
        );
    }
}

fn axis(svg: &mut String, frame: &Frame, lanes: usize) {
    let bottom = frame.bottom(lanes);
    let step = nice_step(frame.t1.saturating_sub(frame.t0), 10);
    let _ =
        writeln!(svg, "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#333\"/>", WIDTH - RIGHT);
    let first = frame.t0.div_ceil(step).saturating_mul(step);
    let ticks = (first..=frame.t1).step_by(usize::try_from(step).unwrap_or(usize::MAX)).take(64);
    for t in ticks {
        let x = frame.x(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#f0f0f0\"/><line x1=\"{x:.1}\" \
             y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{t}</text>",
            frame.top,
            bottom + 5.0,
            bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">simulated time (ms)</text>",
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        bottom + 36.0
    );
}

/// A round step (1, 2, 5 × 10^k) giving at most `max_ticks` ticks over `span`.
fn nice_step(span: u64, max_ticks: u64) -> u64 {
    let mut unit = 1_u64;
    loop {
        for m in [1, 2, 5] {
            let step = unit.saturating_mul(m);
            if span / step <= max_ticks {
                return step;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// `text` broken into lines of at most `width` characters at spaces; a word longer than a line
/// gets a line of its own (never cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `text` shortened to at most `max` characters at a word boundary, with an ellipsis.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() + word.chars().count() + 2 > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        out = text.chars().take(max.saturating_sub(1)).collect();
    }
    out.push('…');
    out
}

fn esc(text: &str) -> String {
    crate::html::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_ms: u64, kind: EventKind, agent: u32, label: &str) -> DiagramEvent {
        DiagramEvent {
            time_ms,
            kind,
            agent: Some(agent),
            session: Some(0),
            round: Some(0),
            label: label.into(),
            ..Default::default()
        }
    }

    fn message(sent: u64, at: u64, from: u32, to: u32, label: &str, delivered: bool) -> DiagramEvent {
        DiagramEvent {
            time_ms: at,
            kind: if delivered { EventKind::Deliver } else { EventKind::Drop },
            agent: Some(if delivered { to } else { from }),
            peer: Some(if delivered { from } else { to }),
            session: Some(0),
            round: Some(0),
            label: label.into(),
            matched_send_ms: Some(sent),
            message: None,
        }
    }

    /// Four agents (agent 3 Byzantine), one session: proposal, prevotes, a dropped precommit,
    /// a crash, a partition, round 1, a lock, decisions and a violation.
    fn sample() -> Diagram {
        let mut events =
            vec![event(0, EventKind::Open, 0, "open 3 candidates"), event(5, EventKind::Vote, 1, "own vote for 2")];
        for to in 1..4 {
            events.push(message(10, 20 + u64::from(to), 0, to, "proposal round 0 by 0", true));
        }
        for from in 0..4 {
            for to in 0..4 {
                if from != to {
                    events.push(message(30, 40 + u64::from(from + to), from, to, "Prevote round 0 by x", true));
                }
            }
        }
        events.push(message(60, 75, 2, 1, "Precommit round 0 by 2", false));
        events.push(message(61, 62, 2, 9, "commit to an agent without a lane", true));
        events.push(event(80, EventKind::Timeout, 1, "Precommit round 0"));
        events.push(event(70, EventKind::Lock, 2, "value 2 in round 0"));
        let mut round1 = message(100, 120, 1, 2, "proposal round 1 by 1", true);
        round1.round = Some(1);
        events.push(round1);
        events.push(event(130, EventKind::Decide, 2, "decide candidate 2"));
        events.push(event(131, EventKind::Decide, 0, "decide candidate 1"));
        events.push(DiagramEvent {
            time_ms: 50,
            kind: EventKind::Fault,
            agent: Some(3),
            label: "crash agent 3".into(),
            ..Default::default()
        });
        events.push(DiagramEvent {
            time_ms: 110,
            kind: EventKind::Fault,
            agent: Some(3),
            label: "restart agent 3".into(),
            ..Default::default()
        });
        events.push(DiagramEvent {
            time_ms: 85,
            kind: EventKind::Fault,
            label: "partition groups [0, 1] | [2, 3]".into(),
            ..Default::default()
        });
        events.push(DiagramEvent { time_ms: 95, kind: EventKind::Fault, label: "heal".into(), ..Default::default() });
        let mut other_session = message(30, 45, 0, 1, "vote of 0 for 1", true);
        other_session.session = Some(1);
        events.push(other_session);
        Diagram {
            title: "agreement at seed 56 <shrunk>".into(),
            agents: (0..4)
                .map(|id| Lane {
                    id,
                    label: if id == 3 { format!("agent {id} (byzantine, equivocate)") } else { format!("agent {id}") },
                    honest: id != 3,
                })
                .collect(),
            events,
            violation: Some((131, Some(0), "agents 2 and 0 decided different candidates (2 and 1) for session 0 in round 1: the long explanation goes on and on past one line of text so that it has to wrap somewhere sensible".into())),
            window_ms: None,
            session: None,
        }
    }

    fn count(doc: &roxmltree::Document<'_>, class: &str) -> usize {
        doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class))).count()
    }

    #[test]
    fn the_svg_is_xml_with_one_lane_per_agent_and_one_arrow_per_delivered_message() {
        let svg = render_svg(&sample());
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(count(&doc, "lane"), 4);
        // 3 proposals + 12 prevotes + 1 round-1 proposal + 1 vote of session 1; the commit to
        // an agent without a lane is a tick, not an arrow.
        assert_eq!(count(&doc, "delivered"), 17);
        assert_eq!(count(&doc, "tick"), 1);
        assert_eq!(count(&doc, "dropped"), 1);
        assert_eq!(count(&doc, "decide"), 2);
        assert_eq!(count(&doc, "lock"), 1);
        assert_eq!(count(&doc, "timeout"), 1);
        assert_eq!(count(&doc, "round"), 1, "one boundary: round 1");
        assert_eq!(count(&doc, "fault"), 2, "the crash band and the partition band");
        assert!(svg.contains("agreement at seed 56 &lt;shrunk&gt;"), "text is escaped");
        assert!(!svg.contains("http://www.w3.org/1999") && !svg.contains("href=\"http"), "nothing external");
    }

    #[test]
    fn the_violation_is_marked_in_red_with_its_whole_text() {
        let svg = render_svg(&sample());
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        let marks: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("violation")).collect();
        assert_eq!(marks.len(), 1);
        let text: Vec<&str> = marks[0].descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
        let joined = text.join(" ");
        assert!(joined.starts_with("violation: agents 2 and 0 decided"), "{joined}");
        assert!(joined.ends_with("somewhere sensible"), "the whole text, wrapped: {joined}");
        assert!(text.len() >= 2, "long text wraps over lines");
        assert!(marks[0].descendants().any(|n| n.tag_name().name() == "circle"), "ring on the agent's lane");
    }

    #[test]
    fn one_session_and_a_window_restrict_the_events() {
        let mut d = sample();
        d.session = Some(1);
        let svg = render_svg(&d);
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        assert_eq!(count(&doc, "delivered"), 1, "only session 1's vote");
        assert_eq!(count(&doc, "fault"), 2, "faults belong to no session and stay");
        let mut d = sample();
        d.window_ms = Some((0, 39));
        let svg = render_svg(&d);
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        assert_eq!(count(&doc, "delivered"), 3, "only the proposals arrive before 40 ms");
    }

    #[test]
    fn empty_and_degenerate_diagrams_render() {
        for d in [
            Diagram::default(),
            Diagram { agents: vec![Lane { id: 7, label: "a".repeat(200), honest: true }], ..Default::default() },
        ] {
            let svg = render_svg(&d);
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
        }
        let d = Diagram { events: vec![event(u64::MAX, EventKind::Decide, 0, "late")], ..sample() };
        roxmltree::Document::parse(&render_svg(&d)).expect("XML at the end of time");
    }

    #[test]
    fn wrapping_never_cuts_a_word() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("averyveryverylongword x", 5), ["averyveryverylongword", "x"]);
        assert!(wrap("   ", 5).is_empty());
        assert_eq!(fit("agent 2 (byzantine, equivocate)", 20), "agent 2 (byzantine,…");
        assert_eq!(MessageKind::from_label("Prevote round 0"), MessageKind::Prevote);
        assert_eq!(MessageKind::from_label("sync from 3"), MessageKind::Other);
        assert_eq!(nice_step(1000, 10), 100);
        assert_eq!(nice_step(0, 10), 1);
        assert_eq!(nice_step(u64::MAX, 10), 2_000_000_000_000_000_000);
    }
}
