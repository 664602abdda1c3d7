//! The first screen: does the vote hold, where does it break, what to replay.

use std::collections::{BTreeMap, BTreeSet};

use super::{pct, seeds_phrase, Builder, Exploration};
use crate::aggregate::{self, network_condition, Scenario, Tolerance, Totals, NETWORK_CONDITIONS};
use crate::doc::{code, link, strong, text, Block, Inline, Table};
use crate::explore::ExploreSummary;
use crate::figures::{EnvelopeCell, EnvelopeData, Plot};
use crate::humanize;
use crate::model::RunRecord;

/// Rows of the replay table at most.
const REPLAY_ROWS: usize = 8;

/// One thing worth replaying.
struct Replay {
    what: String,
    scenario: Inline,
    seed: String,
    detail: String,
    reproduce: Option<String>,
}

impl<'d, 'a> Builder<'d, 'a> {
    pub(super) fn first_screen(&mut self, exploration: Option<&Exploration>) {
        match exploration {
            Some(e) => self.what_explored(e),
            None => self.what_ran(),
        }
        self.verdict(exploration);
        self.quality_summary();
        self.replay_table(exploration);
        self.envelope(exploration.map(|e| &e.summary));
    }

    /// What `bftsim run` ran: how many runs of which scenarios, from which seeds, and which
    /// protocol (the correct one, or the mutations some scenarios plant).
    fn what_ran(&mut self) {
        let data = self.data;
        let t = &data.totals;
        let mut intro = vec![
            strong("What ran: "),
            text(format!(
                "{} runs of {}, each scenario simulated once per seed ({}), from ",
                t.runs,
                match data.scenarios.len() {
                    1 => "1 scenario".to_owned(),
                    n => format!("{n} scenarios"),
                },
                seeds_phrase(data.scenarios.iter().flat_map(|s| s.runs.iter().copied()))
            )),
        ];
        intro.push(code("runs.jsonl"));
        if data.summary.is_some() {
            intro.extend([text(" and "), code("summary.json")]);
        }
        intro.push(text(". "));
        let mutations: std::collections::BTreeSet<&str> = data
            .scenarios
            .iter()
            .filter_map(|s| s.settings().map(|x| x.mutation.as_str()))
            .filter(|m| !m.is_empty() && *m != "none")
            .collect();
        let planted = data.scenarios.iter().filter(|s| s.expects_violation()).count();
        if data.summary.is_none() {
            intro.push(text("Without summary.json the records do not say which protocol variant each scenario ran."));
        } else if mutations.is_empty() {
            intro.push(text("Every scenario ran the correct protocol."));
        } else {
            intro.push(text(format!(
                "{} scenarios ran the correct protocol; {planted} plant a deliberately broken variant (a mutation: ",
                data.scenarios.len() - planted
            )));
            for (i, m) in mutations.iter().enumerate() {
                if i > 0 {
                    intro.push(text(", "));
                }
                intro.push(code(*m));
            }
            intro.push(text(") to check that the checker finds it."));
        }
        self.doc.para(intro);
    }

    /// What `bftsim explore` ran: the protocol (the planted mutation named first), the master
    /// seed, the envelope and the modes.
    fn what_explored(&mut self, e: &Exploration) {
        let s = &e.summary;
        let m = s.modes;
        let mut what = vec![strong("What ran: ")];
        if planted(s).is_some() {
            what.extend([text("the planted mutation "), code(s.mutation.as_str())]);
            what.push(text(" (a deliberately broken protocol, docs/mutations.md), explored by "));
        } else {
            what.push(text("the correct protocol, explored by "));
        }
        what.push(code("bftsim explore"));
        what.push(text(format!(" from master seed {}: {} generated runs around the envelope ", s.master_seed, s.runs)));
        what.push(code(s.envelope.as_str()));
        if s.envelope == "default" {
            what.extend([text(" (the bundled one, printed by "), code("bftsim explore --print-envelope"), text(")")]);
        }
        what.push(text(match &s.only_mode {
            Some(mode) => format!(", in the {mode} mode only"),
            None => format!(
                ", by mode swarm {} (random subsets of the envelope's faults), Twins {} (a Byzantine agent as two \
                 honest copies), ByzzFuzz {} (message mutations by round)",
                m.swarm, m.twins, m.byzzfuzz
            ),
        }));
        what.push(text(if s.until_found { "; stopped at the first finding." } else { "." }));
        if s.interrupted {
            what.extend([text(" "), strong("Interrupted before its budget: absence of findings means less.")]);
        }
        self.doc.para(what);
    }

    /// With a planted mutation, the verdict is on the checker: did it find the planted bug?
    fn planted_verdict(&mut self, e: &Exploration, mutation: &str) {
        let s = &e.summary;
        // Failing runs of the mutation: those in runs.jsonl less the control failures, or (an
        // explore.json alone) the findings' hits.
        let hits: u64 = s.findings.iter().map(|f| f.hits).sum();
        let failing = self.data.totals.violation_runs.saturating_sub(s.control_failures).max(hits);
        let mut v = if s.findings.is_empty() {
            vec![
                strong("The checker missed the planted bug: "),
                text(format!("no run of the {} with ", s.runs)),
                code(mutation),
                text(" violated an invariant."),
            ]
        } else {
            let mut v = vec![
                strong("The checker found the planted bug: "),
                code(mutation),
                text(format!(" broke an invariant in {failing} of {} runs; ", s.runs)),
            ];
            for (i, f) in s.findings.iter().enumerate() {
                if i > 0 {
                    v.push(text("; "));
                }
                v.extend([
                    code(f.invariant.as_str()),
                    text(format!(" first at run {} (", f.first_run)),
                    link(format!("finding {}", f.id), format!("finding-{}", crate::doc::slug(&f.id))),
                    text(format!(", shrunk to {} lines)", f.lines)),
                ]);
            }
            v.push(text(". The table below replays it."));
            v
        };
        if s.control_failures > 0 {
            v.push(text(format!(
                " {} failing runs also failed without the mutation: failures of the correct protocol, not counted \
                 as findings.",
                s.control_failures
            )));
        }
        self.doc.para(v);
    }

    fn verdict(&mut self, exploration: Option<&Exploration>) {
        if let Some((e, mutation)) = exploration.and_then(|e| Some((e, planted(&e.summary)?))) {
            self.planted_verdict(e, mutation);
            return;
        }
        let real: Vec<&'d Scenario<'a>> = self.data.scenarios.iter().filter(|s| !s.expects_violation()).collect();
        let totals = Totals::of(real.iter().flat_map(|s| s.runs.iter().copied()));
        let broken: Vec<&Scenario<'_>> = real.iter().copied().filter(|s| s.totals.violation_runs > 0).collect();
        let mut holds = if real.is_empty() {
            vec![
                strong("No verdict on the real protocol: "),
                text("every scenario here runs a deliberately broken protocol variant (a mutation)."),
            ]
        } else if broken.is_empty() {
            vec![
                strong("The vote held: "),
                text(match exploration {
                    Some(_) => format!("no invariant was violated in any of the {} generated runs.", totals.runs),
                    None => format!(
                        "no invariant was violated in any of the {} runs of the {} scenarios that run the real \
                         protocol.",
                        totals.runs,
                        real.len()
                    ),
                }),
            ]
        } else {
            let mut v = vec![
                strong("The vote broke: "),
                text(format!(
                    "{} of {} runs of the real protocol violated an invariant, in ",
                    totals.violation_runs, totals.runs
                )),
            ];
            self.links(&mut v, &broken);
            v.push(text(". The table below says what to replay."));
            v
        };
        let (within, beyond) = by_tolerance(&real);
        if within.runs > 0 {
            holds.push(text(format!(
                " Within the tolerance (f ≤ f_max Byzantine agents), of {} sessions {} were decided for the best \
                 candidate and {} stayed undecided; {}.",
                within.counts.sessions,
                pct(within.counts.correct, within.counts.sessions),
                pct(within.counts.undecided, within.counts.sessions),
                over_sla_phrase(&within)
            )));
        }
        if beyond.runs > 0 {
            holds.push(text(format!(
                " Beyond it (f > f_max, {} runs), {} of {} sessions were decided and {} stayed undecided: the \
                 design requires a halt there.",
                beyond.runs,
                pct(beyond.counts.decided, beyond.counts.sessions),
                beyond.counts.sessions,
                pct(beyond.counts.undecided, beyond.counts.sessions)
            )));
        }
        self.doc.para(holds);

        self.checker();
        if let Some(e) = exploration {
            self.exploration_line(e);
        }
    }

    /// Whether the checker found the mutation scenarios' violations, and whether every scenario
    /// met its `[expect]`.
    fn checker(&mut self) {
        let mutations: Vec<&Scenario<'_>> = self.data.scenarios.iter().filter(|s| s.expects_violation()).collect();
        if !mutations.is_empty() {
            let missed: Vec<&Scenario<'_>> =
                mutations.iter().copied().filter(|s| s.summary.is_some_and(|x| !x.passed)).collect();
            let mut checker = vec![strong("The checker works: ")];
            if missed.is_empty() {
                checker.push(text(match mutations.len() {
                    1 => "it found the expected violation in the deliberately broken protocol variant (mutation \
                          scenario)."
                        .to_owned(),
                    n => format!(
                        "it found the expected violation in all {n} deliberately broken protocol variants (mutation \
                         scenarios)."
                    ),
                }));
            } else {
                checker = vec![strong("The checker missed: ")];
                checker.push(text(format!(
                    "{} of {} mutation scenarios found no expected violation: ",
                    missed.len(),
                    mutations.len()
                )));
                self.links(&mut checker, &missed);
                checker.push(text("."));
            }
            self.doc.para(checker);
        }
        if self.data.summary.is_some() {
            let failing: Vec<&Scenario<'_>> =
                self.data.scenarios.iter().filter(|s| s.summary.is_some_and(|x| !x.passed)).collect();
            let mut expect = vec![strong("Expectations: ")];
            if failing.is_empty() {
                expect.push(text("every scenario met the expectations written in its file."));
            } else {
                expect.push(text(format!(
                    "{} of {} scenarios missed the expectations written in their files: ",
                    failing.len(),
                    self.data.scenarios.len()
                )));
                self.links(&mut expect, &failing);
                expect.push(text("."));
            }
            self.doc.para(expect);
        }
    }

    /// One line: how many generated runs found how many failures.
    fn exploration_line(&mut self, e: &Exploration) {
        let s = &e.summary;
        let found = match s.findings.len() {
            0 => "no failure".to_owned(),
            1 => "1 distinct failure".to_owned(),
            n => format!("{n} distinct failures"),
        };
        self.doc.para(vec![
            strong("Exploration: "),
            text(format!("{} generated runs around ", s.runs)),
            code(s.envelope.as_str()),
            text(format!(" found {found} (")),
            link("Exploration", "exploration"),
            text(")."),
        ]);
    }

    fn links(&self, out: &mut Vec<Inline>, scenarios: &[&Scenario<'_>]) {
        for (i, s) in scenarios.iter().enumerate() {
            if i > 0 {
                out.push(text(", "));
            }
            out.push(self.scenario_link(&s.name));
        }
    }

    fn replay_table(&mut self, exploration: Option<&Exploration>) {
        let rows = self.replays(exploration);
        if rows.is_empty() {
            self.doc.para(vec![text(
                "Nothing to replay: no violation, wrong decision, undecided session or decision past the SLA.",
            )]);
            return;
        }
        self.doc.para(vec![
            strong("What to replay first"),
            text(
                " (the worst first; paste the command in a shell at the repository root, where the runs and the \
                 report were made):",
            ),
        ]);
        let table_rows = rows
            .into_iter()
            .map(|r| vec![text(r.what), r.scenario, text(r.seed), text(r.detail), super::command_cell(r.reproduce)])
            .collect();
        let header = ["what", "scenario", "seed", "what happened", "reproduce"];
        self.doc.push(Block::Table(Table {
            header: header.map(String::from).to_vec(),
            numeric: vec![false, false, true, false, false],
            rows: table_rows,
        }));
    }

    fn replays(&self, exploration: Option<&Exploration>) -> Vec<Replay> {
        let mut rows = Vec::new();
        let real: Vec<&Scenario<'_>> = self.data.scenarios.iter().filter(|s| !s.expects_violation()).collect();
        for s in &real {
            let mut seen = std::collections::BTreeSet::new();
            for run in &s.runs {
                for v in run.violations.iter().filter(|v| seen.insert(v.invariant.clone())) {
                    rows.push(self.replay(s, run, format!("{} violated", v.invariant), humanize::detail(&v.detail)));
                }
            }
        }
        for f in exploration.iter().flat_map(|e| &e.summary.findings) {
            rows.push(Replay {
                what: format!("exploration finding {}: {} violated", f.id, f.invariant),
                scenario: code(f.scenario.as_str()),
                seed: f.seed.to_string(),
                detail: humanize::detail(&f.detail),
                reproduce: Some(self.finding_command(f)),
            });
        }
        // Beyond f_max wrong or missing decisions are not failures (nothing is promised there).
        let worst = |key: fn(&RunRecord) -> u64| -> Vec<(&Scenario<'_>, &RunRecord)> {
            let mut picks: Vec<(&Scenario<'_>, &RunRecord)> = real
                .iter()
                .filter_map(|s| {
                    let promised = |r: &&RunRecord| tolerance(r, s) != Tolerance::Beyond;
                    let worst = s.runs.iter().copied().filter(promised).filter(|r| key(r) > 0).max_by_key(|r| key(r));
                    worst.map(|r| (*s, r))
                })
                .collect();
            picks.sort_by_key(|(_, r)| std::cmp::Reverse(key(r)));
            picks.truncate(2);
            picks
        };
        for (s, run) in worst(RunRecord::wrong) {
            let w = &run.wrong_by_cause;
            let cause = if w.total() == 0 {
                String::new()
            } else {
                format!(
                    " ({} as the honest votes alone decide, {} caused by Byzantine agents{})",
                    w.honest,
                    w.byzantine,
                    if w.unjudged > 0 {
                        format!(", {} too few honest votes to tell", w.unjudged)
                    } else {
                        String::new()
                    }
                )
            };
            let detail = format!(
                "{} of {} sessions decided for a candidate other than the best{cause}",
                run.wrong(),
                run.counts.sessions
            );
            rows.push(self.replay(s, run, "wrong decisions".into(), detail));
        }
        for (s, run) in worst(|r| r.counts.undecided) {
            let detail = format!(
                "{} of {} sessions still undecided when the run ended",
                run.counts.undecided, run.counts.sessions
            );
            rows.push(self.replay(s, run, "undecided sessions".into(), detail));
        }
        for (s, run) in worst(|r| r.latency_ms.max.saturating_sub(r.deadline_ms)) {
            let detail = format!(
                "slowest decision {} ms against the {} ms SLA (p99 {} ms)",
                run.latency_ms.max, run.deadline_ms, run.latency_ms.p99
            );
            rows.push(self.replay(s, run, "slowest run".into(), detail));
        }
        for s in self.data.scenarios.iter().filter(|s| s.expects_violation()) {
            if let Some((run, v)) = s.runs.iter().find_map(|r| r.violations.first().map(|v| (*r, v))) {
                let what = format!("{} violated, as expected (mutation)", v.invariant);
                rows.push(self.replay(s, run, what, humanize::detail(&v.detail)));
            }
        }
        rows.truncate(REPLAY_ROWS);
        rows
    }

    fn replay(&self, s: &Scenario<'_>, run: &RunRecord, what: String, detail: String) -> Replay {
        Replay {
            what,
            scenario: self.scenario_link(&s.name),
            seed: run.seed.to_string(),
            detail,
            reproduce: self.data.source.command(s.summary, run),
        }
    }

    fn envelope(&mut self, exploration: Option<&ExploreSummary>) {
        if self.data.scenarios.iter().all(|s| s.expects_violation()) {
            return;
        }
        let data = envelope_data(&self.data.scenarios);
        let rows = data.rows.len().max(1) as u32;
        let what = match exploration {
            Some(e) if planted(e).is_some() => format!(
                "Every generated run of the planted mutation {} (the protocol explored here is deliberately broken), \
                 placed by how many Byzantine agents it had",
                e.mutation
            ),
            Some(_) => "Every generated run, placed by how many Byzantine agents it had".to_owned(),
            None => "Every scenario of the real protocol (mutation scenarios left out), placed by how many Byzantine \
                     agents its runs had"
                .to_owned(),
        };
        let explanation = vec![text(format!(
            "{what} against the most its committee tolerates (f_max = ⌊(n − 1)/3⌋ of n agents) and by its harshest \
             network condition (each run's own when its record names one). A cell is red when any run violated an \
             invariant; otherwise its colour is the share of sessions decided for the best candidate. Beyond f_max \
             the protocol promises safety only as far as the checker found no violation; liveness is not promised."
        ))];
        self.figure(
            "envelope",
            "Where the vote holds: outcome by Byzantine tolerance and network condition",
            explanation,
            (1100, 90 + 84 * rows),
            Plot::Envelope(data),
        );
    }
}

/// The planted mutation of an exploration, if it explored one.
fn planted(s: &ExploreSummary) -> Option<&str> {
    Some(s.mutation.as_str()).filter(|m| !m.is_empty() && *m != "none")
}

/// Where a run's Byzantine count stands against its committee's tolerance.
pub(super) fn tolerance(run: &RunRecord, s: &Scenario<'_>) -> Tolerance {
    let n = aggregate::committee_size(run, s.settings());
    Tolerance::of(u32::try_from(run.byzantine.len()).unwrap_or(u32::MAX), n)
}

/// Totals of the runs within the tolerance (f ≤ f_max, or n unknown) and beyond it.
fn by_tolerance(scenarios: &[&Scenario<'_>]) -> (Totals, Totals) {
    let (mut within, mut beyond) = (Totals::default(), Totals::default());
    for s in scenarios {
        for run in &s.runs {
            if tolerance(run, s) == Tolerance::Beyond {
                beyond.add(run);
            } else {
                within.add(run);
            }
        }
    }
    (within, beyond)
}

fn over_sla_phrase(t: &Totals) -> String {
    match t.over_sla_share() {
        Some(share) => format!(
            "{:.1}% of sessions ({} of {}) were decided later than their scenario's SLA (its session deadline)",
            share * 100.0,
            t.over_sla,
            t.over_sla_of
        ),
        None => "the records do not say how many sessions were decided after the SLA".to_owned(),
    }
}

/// The envelope grid over the non-mutation scenarios: columns are the tolerance categories
/// that occur, rows the network conditions that occur.
pub fn envelope_data(scenarios: &[Scenario<'_>]) -> EnvelopeData {
    // (row, column) → (scenarios, totals). A run is placed by its own network condition when
    // its record has one (generated runs each have their own), else by its scenario's.
    let mut cells: BTreeMap<(usize, Tolerance), (BTreeSet<&str>, Totals)> = BTreeMap::new();
    for s in scenarios.iter().filter(|s| !s.expects_violation()) {
        let scenario_row = network_condition(s.settings(), &s.params);
        for run in &s.runs {
            let condition = if run.network.is_empty() { scenario_row } else { run.network.as_str() };
            let row = NETWORK_CONDITIONS.iter().position(|c| *c == condition).unwrap_or(NETWORK_CONDITIONS.len() - 1);
            let cell = cells.entry((row, tolerance(run, s))).or_default();
            cell.0.insert(s.name.as_str());
            cell.1.add(run);
        }
    }
    let columns: Vec<Tolerance> = Tolerance::ALL.into_iter().filter(|c| cells.keys().any(|(_, t)| t == c)).collect();
    let rows: Vec<usize> = (0..NETWORK_CONDITIONS.len()).filter(|r| cells.keys().any(|(row, _)| row == r)).collect();
    let grid = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    cells.get(&(*r, *c)).map(|(scenarios, t)| EnvelopeCell {
                        scenarios: scenarios.len() as u64,
                        runs: t.runs,
                        violation_runs: t.violation_runs,
                        correct: t.accuracy(),
                        undecided: aggregate::ratio(t.counts.undecided, t.counts.sessions),
                    })
                })
                .collect()
        })
        .collect();
    EnvelopeData {
        columns: columns.iter().map(|c| c.label().to_owned()).collect(),
        rows: rows.iter().map(|r| NETWORK_CONDITIONS[*r].to_owned()).collect(),
        cells: grid,
    }
}
