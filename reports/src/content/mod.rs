//! What the report says: the document and the figures it shows, built from a [`Dataset`].
//!
//! Section order: the first screen (what ran, the verdict, decision quality, what to replay,
//! the envelope figure), contents, how to read, overview, decision quality by cause,
//! violations, exploration, across scenarios (Byzantine share, detection, fault families),
//! sweeps, the design's metrics, alerts, then the scenarios (failing ones in full, passing
//! ones one line each).

mod explore;
mod first;
mod quality;
mod scenarios;
mod sections;

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::{self, Dataset, Scenario, Totals, OUTCOME_CATEGORIES};
use crate::doc::{code, link, slug, strong, text, Block, Document, FigureBlock, Inline, Table};
use crate::figures::{Figure, OverviewData, OverviewRow, Plot};
use crate::model::RunRecord;

pub use explore::Exploration;

/// What the report consists of.
#[derive(Debug)]
pub struct Built {
    /// The text.
    pub doc: Document,
    /// Figures to draw.
    pub figures: Vec<Figure>,
    /// Ready-made SVG images (stem, text) to write to `figures/STEM.svg` as they are.
    pub images: Vec<(String, String)>,
}

/// Builds the document, the figures it references and the images it shows.
pub fn build(data: &Dataset<'_>, title: &str, exploration: Option<&Exploration>) -> Built {
    let mut b = Builder::new(data);
    b.doc.heading(1, "top", title);
    if data.scenarios.is_empty() {
        if let Some(e) = exploration {
            b.doc.push(Block::Toc);
            b.exploration(e);
            return b.finish();
        }
        b.doc.para(vec![
            code("runs.jsonl"),
            text(" holds no run records, so there is nothing to show. Run for example "),
            code("bftsim run scenarios --out out/run"),
            text(" first, then "),
            code("bftsim report out/run"),
            text("."),
        ]);
        return b.finish();
    }
    b.first_screen(exploration);
    b.doc.push(Block::Toc);
    b.reading_guide();
    b.overview();
    b.quality();
    b.violations();
    if let Some(e) = exploration {
        b.exploration(e);
    }
    b.across();
    b.sweeps();
    b.metrics();
    b.alerts();
    b.scenarios();
    b.finish()
}

/// Accumulates the document and its figures.
struct Builder<'d, 'a> {
    data: &'d Dataset<'a>,
    doc: Document,
    figures: Vec<Figure>,
    images: Vec<(String, String)>,
    stems: BTreeSet<String>,
    /// Scenario name → anchor of its section.
    anchors: BTreeMap<String, String>,
}

impl<'d, 'a> Builder<'d, 'a> {
    fn new(data: &'d Dataset<'a>) -> Self {
        let mut anchors = BTreeMap::new();
        let mut taken = BTreeSet::new();
        for s in &data.scenarios {
            if !scenarios::in_full(s) {
                anchors.insert(s.name.clone(), scenarios::PASSED_ANCHOR.to_owned());
                continue;
            }
            let base = format!("scenario-{}", slug(&s.name));
            let anchor = unique(&base, &taken);
            taken.insert(anchor.clone());
            anchors.insert(s.name.clone(), anchor);
        }
        Builder {
            data,
            doc: Document::default(),
            figures: Vec::new(),
            images: Vec::new(),
            stems: BTreeSet::new(),
            anchors,
        }
    }

    fn finish(self) -> Built {
        Built { doc: self.doc, figures: self.figures, images: self.images }
    }

    /// Adds a figure block for a ready-made SVG (written as `figures/STEM.svg`, no PNG).
    fn image(&mut self, stem: &str, title: &str, explanation: Vec<Inline>, svg: &str) {
        let stem = unique(&slug(stem), &self.stems);
        self.stems.insert(stem.clone());
        self.doc.push(Block::Figure(FigureBlock {
            stem: stem.clone(),
            title: title.to_owned(),
            alt: title.to_owned(),
            explanation,
            size: svg_size(svg),
            png: false,
        }));
        self.images.push((stem, svg.to_owned()));
    }

    /// Adds a figure block (title, explanation) and the figure to draw.
    fn figure(&mut self, stem: &str, title: &str, explanation: Vec<Inline>, size: (u32, u32), plot: Plot) {
        let stem = unique(&slug(stem), &self.stems);
        self.stems.insert(stem.clone());
        self.doc.push(Block::Figure(FigureBlock {
            stem: stem.clone(),
            title: title.to_owned(),
            alt: title.to_owned(),
            explanation,
            size,
            png: true,
        }));
        self.figures.push(Figure { stem, size, plot });
    }

    fn scenario_link(&self, name: &str) -> Inline {
        match self.anchors.get(name) {
            Some(anchor) => link(name, anchor.as_str()),
            None => code(name),
        }
    }

    fn reading_guide(&mut self) {
        self.doc.heading(2, "reading", "How to read this report");
        let items: Vec<Vec<Inline>> = vec![
            vec![strong("Scenario: "), text("a file describing the agents, the faults injected (Byzantine agents, crashes, message loss, partitions…), the workload and what is expected. A sweep point is named "), code("base[axis=value,…]"), text(".")],
            vec![strong("Run and seed: "), text("one simulation of one scenario with one seed. The simulator is deterministic: the same seed replays exactly the same run.")],
            vec![strong("Session: "), text("one question the agents must agree on (choose the best of several candidates). Every session ends in exactly one way: "), strong("decided correct"), text(" — agreed on the best candidate (the ground truth the simulator knows); "), strong("decided wrong"), text(" — agreed on another candidate; "), strong("escalated"), text(" — handed to people; "), strong("no decision"), text(" — agreed that no candidate qualifies; "), strong("undecided"), text(" — still open when the run ended (a liveness failure); "), strong("unaccounted"), text(" — sessions a record places nowhere (should be zero).")],
            vec![strong("Fallback: "), text("a session decided by the timeout fallback instead of a vote. Fallback decisions are already counted in decided correct/wrong; figures draw them as a black outline over the decided part, not as extra sessions.")],
            vec![strong("Byzantine influence: "), text("a session whose decision the Byzantine agents changed: the simulator also runs the engine on the honest agents' votes alone, and the session counts when the decision differs from that (another candidate, a candidate where the honest votes give none, or an escalation or \"no decision\" the honest votes would not give). Escalations and \"no decision\" that the honest votes alone give too are honest disagreement, counted separately.")],
            vec![strong("Wrong decisions by cause: "), text("a wrong decision (a candidate other than the best) that the honest agents' own votes would make too comes from the honest agents themselves (evaluator noise, candidates of nearly equal quality); one they would not make was caused by the Byzantine agents. The honest margin is how many honest votes separated the best candidate from the chosen one; the influence bound (docs/protocol.md) says how large it can be when the Byzantine agents cause the decision.")],
            vec![strong("Violation: "), text("the checker found a named invariant broken (for example "), code("agreement"), text(": two honest agents decided differently). A run stops at its first violation; each comes with a command that replays it.")],
            vec![strong("Latency: "), text("time from a session's start to an honest agent's decision. Each run reports its p50 (median), p95 and p99. The service-level target (SLA) is each scenario's session deadline ([protocol] deadline_ms; the design's default is 500 ms). A session is over the SLA when its first honest decision came later than that; the report gives their share of all sessions.")],
            vec![strong("Agreement rate: "), text("the mean share of agents that voted for the decided outcome (100% = unanimous).")],
            vec![strong("Byzantine agent: "), text("an agent the scenario makes misbehave (lie, stay silent, equivocate…). The engine may flag agents it suspects: flagging a Byzantine agent is a catch, flagging an honest one is a mistake.")],
        ];
        self.doc.push(Block::List(items));
    }

    fn overview(&mut self) {
        self.doc.heading(2, "overview", "Overview: how every session ended");
        let rows: Vec<OverviewRow> = self
            .data
            .scenarios
            .iter()
            .map(|s| OverviewRow {
                label: s.name.clone(),
                counts: s.totals.outcome_counts(),
                fallback: s.totals.counts.fallback,
                runs: s.totals.runs,
                violation_runs: s.totals.violation_runs,
            })
            .collect();
        let height = 52 + 60 + 24 * rows.len() as u32;
        let explanation = vec![text(format!(
            "Each bar is one scenario; its full length is all the sessions of all its runs together ({}), coloured \
             by how each session ended. The black outline marks the part decided by the timeout fallback (inside \
             the decided colours, not extra). The red note on the right counts runs that violated an invariant.",
            seeds_phrase(self.data.scenarios.iter().flat_map(|s| s.runs.iter().copied()))
        ))];
        self.figure(
            "overview-outcomes",
            "Sessions by outcome, per scenario",
            explanation,
            (1100, height),
            Plot::Overview(OverviewData { rows }),
        );
        self.doc.push(Block::Table(self.overview_table()));
    }

    fn overview_table(&self) -> Table {
        let with_summary = self.data.summary.is_some();
        let mut header: Vec<String> = vec!["scenario".into(), "runs".into(), "sessions".into()];
        header.extend(OUTCOME_CATEGORIES.iter().take(5).map(|c| c.to_string()));
        header.extend([
            "of decided: fallback".into(),
            "Byzantine influence".into(),
            "escalated or no decision by honest disagreement".into(),
            "sessions over the SLA".into(),
            "runs with a violation".into(),
            "p99 latency, median of runs".into(),
        ]);
        if with_summary {
            header.extend(["expected".into(), "verdict".into()]);
        }
        let mut numeric = vec![false];
        numeric.extend([true; 13]);
        numeric.extend([false, false]);
        let rows = self
            .data
            .scenarios
            .iter()
            .map(|s| {
                let t = &s.totals;
                let counts = t.outcome_counts();
                let mut row =
                    vec![self.scenario_link(&s.name), text(t.runs.to_string()), text(t.counts.sessions.to_string())];
                row.extend(counts.iter().take(5).map(|c| text(pct(*c, t.counts.sessions))));
                row.push(text(pct(t.counts.fallback, t.counts.sessions)));
                row.push(text(pct(t.counts.influenced, t.counts.sessions)));
                row.push(text(pct(t.counts.honest_unresolved, t.counts.sessions)));
                row.push(text(t.over_sla_share().map_or_else(
                    || "–".to_owned(),
                    |share| format!("{:.1}% (SLA {} ms)", share * 100.0, s.deadline_ms()),
                )));
                row.push(text(t.violation_runs.to_string()));
                row.push(text(median_p99(&s.runs)));
                if with_summary {
                    row.push(text(expectation(s)));
                    row.push(text(verdict(s)));
                }
                row
            })
            .collect();
        Table { header, numeric, rows }
    }

    fn violations(&mut self) {
        self.doc.heading(2, "violations", "Violations and how to replay them");
        let rows = aggregate::violations(self.data);
        if rows.is_empty() {
            self.doc.para(vec![text("No run violated an invariant.")]);
            return;
        }
        self.doc.para(vec![text(format!(
            "Every run that broke an invariant ({} in all). The step is the position in the run's event trace and \
             the time is simulated time. Paste the command in a shell at the repository root to replay the run \
             exactly. Rows marked expected belong to deliberately broken (mutation) scenarios, where finding the \
             violation is the point of the scenario.",
            rows.len()
        ))]);
        let header = ["scenario", "seed", "invariant", "step", "time (ms)", "expected", "what happened", "reproduce"];
        let expected: BTreeSet<&str> =
            self.data.scenarios.iter().filter(|s| s.expects_violation()).map(|s| s.name.as_str()).collect();
        const SHOWN: usize = 60;
        if rows.len() > SHOWN {
            self.doc.para(vec![text(format!(
                "The first {SHOWN} are listed, by scenario and seed; every scenario section lists its own first \
                 violations."
            ))]);
        }
        let table_rows = rows
            .iter()
            .take(SHOWN)
            .map(|v| {
                vec![
                    self.scenario_link(&v.scenario),
                    text(v.seed.to_string()),
                    code(v.invariant.as_str()),
                    text(v.step.to_string()),
                    text(v.time_ms.to_string()),
                    text(if expected.contains(v.scenario.as_str()) { "yes" } else { "no" }),
                    text(crate::humanize::detail(&v.detail)),
                    command_cell(v.reproduce.clone()),
                ]
            })
            .collect();
        let numeric = vec![false, true, false, true, true, false, false, false];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows: table_rows }));
    }
}

/// A replay command as a table cell: the command as code, or why there is none.
fn command_cell(command: Option<String>) -> Inline {
    match command {
        Some(command) => code(command),
        None => text(crate::replay::NO_COMMAND),
    }
}

/// The `width` and `height` of an SVG's root element, in pixels (1400 × 600 when unreadable).
fn svg_size(svg: &str) -> (u32, u32) {
    let root = svg.find("<svg").and_then(|at| svg[at..].find('>').map(|end| &svg[at..at + end])).unwrap_or("");
    let attribute = |name: &str| {
        let start = root.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &root[start..start + root[start..].find('"')?];
        value
            .trim_end_matches("px")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 1.0)
            .map(|v| v.min(10_000.0) as u32)
    };
    (attribute("width").unwrap_or(1400), attribute("height").unwrap_or(600))
}

fn unique(base: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2..).map(|i| format!("{base}-{i}")).find(|s| !taken.contains(s)).unwrap_or_else(|| base.to_owned())
}

/// `num / den` as a percentage with one decimal, or "–" when `den` is 0.
pub fn pct(num: u64, den: u64) -> String {
    if den == 0 {
        "–".to_owned()
    } else {
        format!("{:.1}%", aggregate::ratio(num, den) * 100.0)
    }
}

/// `num / den` as a percentage with two decimals (for small shares such as wrong decisions by
/// cause), or "–" when `den` is 0.
pub fn pct2(num: u64, den: u64) -> String {
    if den == 0 {
        "–".to_owned()
    } else {
        format!("{:.2}%", aggregate::ratio(num, den) * 100.0)
    }
}

/// "seeds 0–29" for a contiguous range, else "N distinct seeds".
pub fn seeds_phrase<'r>(runs: impl IntoIterator<Item = &'r RunRecord>) -> String {
    let seeds: BTreeSet<u64> = runs.into_iter().map(|r| r.seed).collect();
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if a == b => format!("seed {a}"),
        (Some(a), Some(b)) if b.checked_sub(*a).and_then(|d| d.checked_add(1)) == Some(seeds.len() as u64) => {
            format!("seeds {a}–{b}")
        }
        _ => format!("{} distinct seeds", seeds.len()),
    }
}

/// "95.0% decided correct, 5.0% escalated …" listing only the non-empty categories.
fn outcome_sentence(t: &Totals) -> String {
    let counts = t.outcome_counts();
    let parts: Vec<String> = OUTCOME_CATEGORIES
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(name, c)| format!("{} {name}", pct(c, t.counts.sessions)))
        .collect();
    let mut sentence = if parts.is_empty() { "none".to_owned() } else { parts.join(", ") };
    if t.counts.fallback > 0 {
        sentence.push_str(&format!(
            " ({} of all sessions decided by the timeout fallback)",
            pct(t.counts.fallback, t.counts.sessions)
        ));
    }
    if t.counts.influenced > 0 {
        sentence.push_str(&format!(
            "; {} of all sessions changed by Byzantine agents",
            pct(t.counts.influenced, t.counts.sessions)
        ));
    }
    sentence.push('.');
    sentence
}

/// Median over runs (that decided something) of the run's p99 latency.
fn median_p99(runs: &[&RunRecord]) -> String {
    let mut p99s: Vec<u64> = runs.iter().filter(|r| r.latency_ms.is_recorded()).map(|r| r.latency_ms.p99).collect();
    if p99s.is_empty() {
        return "–".to_owned();
    }
    p99s.sort_unstable();
    format!("{} ms", p99s[(p99s.len() - 1) / 2])
}

fn expectation(s: &Scenario<'_>) -> String {
    match s.summary {
        Some(x) if !x.expect_safety => {
            format!("finds {}", x.expect_invariant.as_deref().unwrap_or("a violation"))
        }
        Some(_) => "safe".to_owned(),
        None => "–".to_owned(),
    }
}

fn verdict(s: &Scenario<'_>) -> String {
    match s.summary.map(|x| x.passed) {
        Some(true) => "PASS".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => "–".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionCounts;

    fn run(seed: u64) -> RunRecord {
        RunRecord { seed, ..RunRecord::default() }
    }

    #[test]
    fn svg_sizes() {
        assert_eq!(svg_size(r#"<?xml?><svg xmlns="x" width="1400" height="512.5">"#), (1400, 512));
        assert_eq!(svg_size(r#"<svg height="20px" width="30px"/>"#), (30, 20));
        assert_eq!(svg_size("not svg"), (1400, 600));
    }

    #[test]
    fn seed_phrases() {
        assert_eq!(seeds_phrase(&[run(0), run(1), run(2)]), "seeds 0–2");
        assert_eq!(seeds_phrase(&[run(5), run(5)]), "seed 5");
        assert_eq!(seeds_phrase(&[run(0), run(7)]), "2 distinct seeds");
        assert_eq!(seeds_phrase(&[run(0), run(u64::MAX)]), "2 distinct seeds");
        assert_eq!(seeds_phrase(&[]), "0 distinct seeds");
    }

    #[test]
    fn percentages_and_sentences() {
        assert_eq!(pct(1, 3), "33.3%");
        assert_eq!(pct(1, 0), "–");
        let counts = SessionCounts {
            sessions: 4,
            decided: 3,
            correct: 2,
            undecided: 1,
            fallback: 1,
            ..SessionCounts::default()
        };
        let t = Totals { counts, ..Totals::default() };
        assert_eq!(
            outcome_sentence(&t),
            "50.0% decided correct, 25.0% decided wrong, 25.0% undecided (25.0% of all sessions decided by the timeout fallback)."
        );
    }
}
