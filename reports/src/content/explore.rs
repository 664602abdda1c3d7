//! The Exploration section: what `bftsim explore` ran and found (`explore.json`).

use std::collections::BTreeMap;

use super::{pct, Builder};
use crate::doc::{code, slug, strong, text, Block, Inline, Table};
use crate::explore::{ExploreSummary, Finding};

/// `explore.json` and the SVG text of each finding's diagram, by finding id (absent when the
/// file could not be read).
#[derive(Clone, Debug, Default)]
pub struct Exploration {
    /// The summary.
    pub summary: ExploreSummary,
    /// Finding id → SVG text.
    pub diagrams: BTreeMap<String, String>,
}

impl Builder<'_, '_> {
    pub(super) fn exploration(&mut self, e: &Exploration) {
        self.doc.heading(2, "exploration", "Exploration");
        let s = &e.summary;
        let modes = s.modes;
        let mut intro = vec![
            code("bftsim explore"),
            text(format!(
                " made {} runs in {} ({:.0} runs per second on {} threads) from master seed {}, around the envelope ",
                s.runs,
                duration(s.elapsed_ms),
                s.runs_per_second(),
                s.jobs,
                s.master_seed
            )),
            code(s.envelope.as_str()),
        ];
        if !s.mutation.is_empty() && s.mutation != "none" {
            intro.extend([text(" with the protocol mutation "), code(s.mutation.as_str())]);
        }
        intro.push(text(format!(
            ". Runs by generation mode: swarm (random subsets of the envelope's features) {}, twins (Byzantine \
             copies of honest agents) {}, ByzzFuzz (message mutations by round) {}.",
            modes.swarm, modes.twins, modes.byzzfuzz
        )));
        if s.interrupted {
            intro.extend([
                text(" "),
                strong("The exploration was interrupted before its budget: absence of findings means less."),
            ]);
        }
        self.doc.para(intro);
        self.coverage_table(s);
        self.protocol_coverage(s);
        if s.findings.is_empty() {
            self.doc.para(vec![text(format!("No run of the {} violated an invariant.", s.runs))]);
            return;
        }
        let count = match s.findings.len() {
            1 => "One distinct failure, shrunk".to_owned(),
            n => format!("{n} distinct failures, each shrunk"),
        };
        self.doc.para(vec![text(format!(
            "{count} to a small scenario that still fails the same way; the shrunk file is in the exploration's \
             output directory and the command replays it."
        ))]);
        for finding in &s.findings {
            self.finding(finding, e.diagrams.get(&finding.id));
        }
    }

    fn coverage_table(&mut self, s: &ExploreSummary) {
        if s.coverage.is_empty() {
            return;
        }
        self.doc.para(vec![text(
            "Coverage: how many runs exercised each feature of the envelope (a run may have several), and how many \
             of those violated an invariant.",
        )]);
        let rows = s
            .coverage
            .iter()
            .map(|c| {
                vec![
                    code(c.feature.as_str()),
                    text(c.runs.to_string()),
                    text(pct(c.runs, s.runs)),
                    text(c.violations.to_string()),
                    text(pct(c.violations, c.runs)),
                ]
            })
            .collect();
        let header = ["feature", "runs", "share of all runs", "runs with a violation", "violation share"];
        let numeric = vec![false, true, true, true, true];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }

    /// Cumulative protocol coverage by family, and the points never reached: where the
    /// exploration's inputs do not go.
    fn protocol_coverage(&mut self, s: &ExploreSummary) {
        let Some(c) = &s.protocol_coverage else { return };
        let mut intro = vec![text(format!(
            "Protocol coverage (docs/coverage.md): the honest agents of the {} runs reached {} of the {} points \
             (rules of docs/protocol.md, both outcomes of each V-check, rejection reasons, certificate checks, \
             abstract states).",
            c.runs, c.reached, c.total
        ))];
        if let (Some(last), true) = (c.curve.last(), c.runs > 0) {
            intro.push(text(format!(
                " The last point reached for the first time came at run {} of {} ({} new-coverage runs in all).",
                last.runs,
                c.runs,
                c.curve.len()
            )));
        }
        self.doc.para(intro);
        let rows = c
            .families
            .iter()
            .map(|f| {
                vec![
                    text(f.family.as_str()),
                    text(f.reached.to_string()),
                    text(f.total.to_string()),
                    text(pct(f.reached, f.total)),
                ]
            })
            .collect();
        let header = ["family", "points reached", "points", "share"];
        self.doc.push(Block::Table(Table {
            header: header.map(String::from).to_vec(),
            numeric: vec![false, true, true, true],
            rows,
        }));
        if c.never_reached.is_empty() {
            self.doc.para(vec![text("Every point was reached.")]);
            return;
        }
        let mut never = vec![strong(format!("Never reached ({}): ", c.never_reached.len()))];
        for (i, name) in c.never_reached.iter().enumerate() {
            if i > 0 {
                never.push(text(", "));
            }
            never.push(code(name.as_str()));
        }
        never.push(text("."));
        self.doc.para(never);
    }

    fn finding(&mut self, f: &Finding, diagram: Option<&String>) {
        let anchor = format!("finding-{}", slug(&f.id));
        self.doc.heading(3, &anchor, format!("Finding {}: {}", f.id, f.invariant));
        let mut what = vec![
            strong("Invariant: "),
            code(f.invariant.as_str()),
            text(". "),
            strong("Where: "),
            code(f.location.as_str()),
            text(format!(". First hit at run {} of the exploration; {} runs hit it in all. ", f.first_run, f.hits)),
        ];
        if !f.detail.is_empty() {
            what.extend([strong("What happened: "), text(crate::humanize::detail(&f.detail))]);
        }
        self.doc.para(what);
        self.doc.para(vec![
            strong("Shrunk scenario: "),
            code(f.scenario.as_str()),
            text(format!(
                " ({} lines; size {} before shrinking, {} after), seed {}. Replay it:",
                f.lines, f.size_before, f.size_after, f.seed
            )),
        ]);
        self.doc.push(Block::Code(self.finding_command(f)));
        match (diagram, &f.diagram) {
            (Some(svg), Some(path)) => {
                let explanation: Vec<Inline> = vec![
                    text(
                        "The shrunk run: one lane per agent, simulated time to the right, one arrow per message \
                          (dashed with an x: dropped), the violation in red. From ",
                    ),
                    code(path.as_str()),
                    text("."),
                ];
                let title = format!("Space-time diagram of finding {}", f.id);
                self.image(&format!("explore-{}", f.id), &title, explanation, svg);
            }
            (None, Some(path)) => {
                self.doc.para(vec![text("The diagram "), code(path.as_str()), text(" could not be read.")]);
            }
            _ => {}
        }
    }
}

impl Builder<'_, '_> {
    /// The command that replays a finding's shrunk scenario, named from the directory the
    /// report was made from (explore.json's own `reproduce` names it from where `explore` ran).
    pub(super) fn finding_command(&self, f: &Finding) -> String {
        format!("bftsim reproduce {} --seed {}", self.data.source.path(&f.scenario), f.seed)
    }
}

/// `61 s`, `2 min 5 s`, `1 h 3 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 if ms < 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(1_234), "1.2 s");
        assert_eq!(duration(61_000), "1 min 1 s");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(3_725_000), "1 h 2 min");
    }
}
