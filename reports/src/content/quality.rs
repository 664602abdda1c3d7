//! Decision quality by cause: which wrong decisions the honest agents' own votes would have
//! made too (evaluator noise, close candidates) and which the Byzantine agents caused, by
//! scenario (by generation mode for an exploration) and by honest margin; and the outcomes by
//! fault family. Only runs within the tolerance (at most f_max Byzantine agents) count: beyond
//! it nothing is promised.

use std::collections::BTreeMap;

use super::{pct2 as pct, Builder};
use crate::aggregate::{Scenario, Tolerance, FAMILIES};
use crate::doc::{code, link, strong, text, Block, Inline, Table};
use crate::explore::ModeQuality;
use crate::model::{RunRecord, WrongByCause};

/// The section's anchor.
const ANCHOR: &str = "quality";

impl<'d, 'a> Builder<'d, 'a> {
    /// The runs of the scenarios that are not expected to fail, within the tolerance, with
    /// their scenario.
    fn promised_runs(&self) -> impl Iterator<Item = (&'d Scenario<'a>, &'a RunRecord)> + '_ {
        let data: &'d crate::aggregate::Dataset<'a> = self.data;
        data.scenarios
            .iter()
            .filter(|s| !s.expects_violation())
            .flat_map(|s| s.runs.iter().map(move |r| (s, *r)))
            .filter(|(s, r)| super::first::tolerance(r, s) != Tolerance::Beyond)
    }

    /// The first screen's sentence: how many sessions were decided right, and the wrong ones
    /// by cause.
    pub(super) fn quality_summary(&mut self) {
        let mut all = ModeQuality::default();
        for (_, run) in self.promised_runs() {
            all.add(run);
        }
        if all.sessions == 0 {
            return;
        }
        let mut p = vec![
            strong("Decision quality: "),
            text(format!(
                "of {} sessions within the tolerance, {} were decided for the best candidate and {} for another",
                all.sessions,
                pct(all.correct, all.sessions),
                pct(all.wrong, all.sessions)
            )),
        ];
        let w = &all.wrong_by_cause;
        if all.wrong == 0 {
            p.push(text("."));
        } else if w.total() == 0 {
            p.push(text(" (these records predate the split of wrong decisions by cause)."));
        } else {
            p.push(text(format!(
                ": {} of all sessions as the honest agents' own votes alone would decide too (evaluator noise, \
                 close candidates), {} caused by the Byzantine agents",
                pct(w.honest, all.sessions),
                pct(w.byzantine, all.sessions)
            )));
            if let Some(m) = largest_margin(w) {
                p.push(text(format!(" (at an honest margin of at most {m} vote{})", if m == 1 { "" } else { "s" })));
            }
            if w.unjudged > 0 {
                p.push(text(format!(", {} had too few honest votes to tell", pct(w.unjudged, all.sessions))));
            }
            p.push(text(". "));
            p.push(text(bound_sentence(w)));
        }
        p.extend([
            text(" "),
            text(format!("{} of sessions were influenced by Byzantine agents (", pct(all.influenced, all.sessions))),
        ]);
        p.extend([link("Decision quality", ANCHOR), text(").")]);
        self.doc.para(p);
    }

    /// The section: wrong decisions by cause, per scenario (mode) and by honest margin.
    pub(super) fn quality(&mut self) {
        self.doc.heading(2, ANCHOR, "Decision quality: wrong decisions by cause");
        self.doc.para(vec![text(
            "A session is decided wrong when the agents agree on a candidate other than the best (the ground truth \
             the simulator knows). The simulator also runs the engine on the honest agents' votes alone: a wrong \
             decision they would make too comes from the honest agents themselves (evaluator noise, candidates \
             of nearly equal quality), one they would not make was caused by the Byzantine agents. The honest \
             margin is how many honest votes separated the best candidate from the chosen one (supporting votes \
             for the best minus those for the chosen; 0 or less: the honest agents themselves leaned to the \
             chosen one). Runs within the tolerance only (at most f_max Byzantine agents).",
        )]);
        let mut rows: Vec<(String, ModeQuality)> = Vec::new();
        for (s, run) in self.promised_runs() {
            match rows.last_mut() {
                Some((name, q)) if *name == s.name => q.add(run),
                _ => {
                    let mut q = ModeQuality { mode: s.name.clone(), ..ModeQuality::default() };
                    q.add(run);
                    rows.push((s.name.clone(), q));
                }
            }
        }
        if rows.is_empty() {
            self.doc.para(vec![text("No run within the tolerance.")]);
            return;
        }
        let all = ModeQuality::total(&rows.iter().map(|(_, q)| q.clone()).collect::<Vec<_>>());
        let mut table: Vec<Vec<Inline>> =
            rows.iter().map(|(name, q)| self.quality_row(self.scenario_link(name), q)).collect();
        if rows.len() > 1 {
            table.push(self.quality_row(strong("all"), &all));
        }
        let header = [
            "scenario",
            "runs",
            "sessions",
            "decided correct",
            "decided wrong",
            "wrong: the honest votes alone too",
            "wrong: caused by Byzantine agents",
            "wrong: too few honest votes to tell",
            "influenced by Byzantine agents",
        ];
        let mut numeric = vec![true; header.len()];
        numeric[0] = false;
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows: table }));
        self.margin_table(&all.wrong_by_cause);
    }

    fn quality_row(&self, name: Inline, q: &ModeQuality) -> Vec<Inline> {
        let w = &q.wrong_by_cause;
        vec![
            name,
            text(q.runs.to_string()),
            text(q.sessions.to_string()),
            text(pct(q.correct, q.sessions)),
            text(pct(q.wrong, q.sessions)),
            text(pct(w.honest, q.sessions)),
            text(pct(w.byzantine, q.sessions)),
            text(pct(w.unjudged, q.sessions)),
            text(pct(q.influenced, q.sessions)),
        ]
    }

    fn margin_table(&mut self, w: &WrongByCause) {
        if w.by_margin.is_empty() {
            return;
        }
        self.doc.para(vec![
            strong("By honest margin"),
            text(
                " (wrong decisions within the tolerance; a Byzantine-caused one at a large margin would be a \
                 protocol weakness, at a margin near 0 it is a close question the Byzantine votes tipped). ",
            ),
            text(bound_sentence(w)),
        ]);
        let rows = w
            .by_margin
            .iter()
            .map(|m| {
                vec![
                    text(m.margin.to_string()),
                    text(m.honest.to_string()),
                    text(m.byzantine.to_string()),
                    text(m.unjudged.to_string()),
                ]
            })
            .collect();
        let header = [
            "honest margin (votes)",
            "wrong: the honest votes alone too",
            "wrong: caused by Byzantine agents",
            "wrong: too few honest votes to tell",
        ];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric: vec![true; 4], rows }));
    }

    /// The table of outcomes by fault family (network faults, timed faults, round faults and
    /// Byzantine behaviours), from the families each run records.
    pub(super) fn families(&mut self) {
        let mut by_family: BTreeMap<(usize, String), (ModeQuality, u64, u64)> = BTreeMap::new();
        for (_, run) in self.promised_runs() {
            for family in &run.families {
                let order = FAMILIES.iter().position(|f| f == family).unwrap_or(FAMILIES.len());
                let entry = by_family.entry((order, family.clone())).or_default();
                entry.0.add(run);
                entry.1 += run.counts.undecided;
                entry.2 += u64::from(!run.violations.is_empty());
            }
        }
        if by_family.is_empty() {
            return;
        }
        self.doc.heading(3, "families", "Outcomes by fault family");
        self.doc.para(vec![text(
            "Each run counts under every fault family its scenario has (a run may have several): network faults \
             (loss, duplicates, a latency tail, latency above the prevote timeout), timed faults (partitions, \
             crashes, clogs), round faults (round partitions of Twins and ByzzFuzz, tampered messages), short \
             round timeouts, and each Byzantine behaviour. Runs within the tolerance only.",
        )]);
        let rows = by_family
            .into_iter()
            .map(|((_, family), (q, undecided, violations))| {
                vec![
                    code(family),
                    text(q.runs.to_string()),
                    text(q.sessions.to_string()),
                    text(pct(q.correct, q.sessions)),
                    text(pct(q.wrong_by_cause.honest, q.sessions)),
                    text(pct(q.wrong_by_cause.byzantine, q.sessions)),
                    text(pct(q.influenced, q.sessions)),
                    text(pct(undecided, q.sessions)),
                    text(violations.to_string()),
                ]
            })
            .collect();
        let header = [
            "fault family",
            "runs",
            "sessions",
            "decided correct",
            "wrong: the honest votes alone too",
            "wrong: caused by Byzantine agents",
            "influenced",
            "undecided",
            "runs with a violation",
        ];
        let mut numeric = vec![true; header.len()];
        numeric[0] = false;
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }
}

/// The largest honest margin of a wrong decision the Byzantine agents caused.
fn largest_margin(w: &WrongByCause) -> Option<i64> {
    w.by_margin.iter().rev().find(|m| m.byzantine > 0).map(|m| m.margin)
}

/// What the influence bound says about these counts.
fn bound_sentence(w: &WrongByCause) -> String {
    let bound = "b + f + (n − q) honest votes (b Byzantine of n agents, f = f_max, q the quorum; docs/protocol.md, \
                 \"The influence bound\")";
    match w.beyond_bound {
        0 => format!("No Byzantine-caused wrong decision exceeded the influence bound of {bound}."),
        k => {
            format!("{k} Byzantine-caused wrong decisions exceeded the influence bound of {bound}: see the violations.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WrongCause;

    #[test]
    fn the_largest_byzantine_margin_ignores_honest_errors() {
        let mut w = WrongByCause::default();
        w.add(WrongCause::Honest, 4);
        w.add(WrongCause::Byzantine, 1);
        w.add(WrongCause::Byzantine, -2);
        assert_eq!(largest_margin(&w), Some(1));
        assert_eq!(largest_margin(&WrongByCause::default()), None);
        assert!(bound_sentence(&w).starts_with("No Byzantine-caused"));
    }
}
