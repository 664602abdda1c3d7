//! The run's record, read from the world once the run is over: the oracle's last checks (the
//! references still owed votes, catch-up, liveness), how every session ended, the design's
//! metrics and alerts, and the trace.

use super::*;

pub(super) fn finish(
    scenario: &Scenario,
    seed: u64,
    params: BTreeMap<String, String>,
    world: &Shared,
    derived: &Derived,
    end_ms: TimeMs,
) -> RunOutput {
    let Ok(mut guard) = world.lock() else { unreachable_poison(scenario, seed) };
    let w = &mut *guard;
    let step = w.trace.step();
    // The honest references still waiting for votes (crashed or slow honest agents), and the
    // influence bound on them, before the run's violation is read.
    w.oracle.settle(step, end_ms);
    if !w.stop {
        // A catch-up deadline that passed after the last step.
        w.oracle.check_catch_up(step, end_ms);
    }
    if scenario.promises_liveness() && !w.stop && w.oracle.violation().is_none() {
        // An agent paused or clogged for good is up but cut off: counted faulty by the
        // promise (`Scenario::default_liveness`), it owes no decision.
        let cut_off = |a: &AgentId| w.clogs.contains(&crate::scenario::ClogTarget::Agent(a.0));
        let up: BTreeSet<AgentId> = w.up.iter().copied().filter(|a| *a != AgentId::CLIENT && !cut_off(a)).collect();
        w.oracle.check_liveness(&up, scenario.workload.sessions, scenario.expect.liveness_bound_ms, step, end_ms);
    }
    let violation = w.oracle.violation().cloned();
    if let Some(v) = &violation {
        let detail = format!("{}: {}", v.invariant, v.detail);
        w.trace.record(end_ms, "violation", crate::trace::Key { extra: v.step, ..Default::default() }, |step| {
            TraceEvent { step, time_ms: v.time_ms, kind: "violation".into(), detail, ..Default::default() }
        });
    }
    let mut stats = SessionStats::default();
    let mut metrics = MetricsRecorder::new();
    for s in 0..scenario.workload.sessions {
        stats.add(w, derived, scenario, SessionId(s), &mut metrics);
    }
    let snapshot = metrics.snapshot(Some(w.oracle.registry()));
    let thresholds = AlertThresholds { sla_ms: scenario.protocol.deadline_ms, ..AlertThresholds::default() };
    let alerts = check_alerts(&snapshot, &thresholds).into_iter().map(|a| a.title).collect();
    let outcome = match (&violation, scenario.expect.safety, &scenario.expect.invariant) {
        (None, _, _) => RunOutcome::Ok,
        (Some(v), false, Some(expected)) if v.invariant != *expected => RunOutcome::ExpectationFailed,
        (Some(_), _, _) => RunOutcome::Violation,
    };
    let detected: BTreeSet<u32> = stats.detected.iter().map(|a| a.0).collect();
    let record = RunRecord {
        scenario: scenario.name.clone(),
        params,
        seed,
        outcome,
        violations: violation.into_iter().collect(),
        counts: SessionCounts { sessions: scenario.workload.sessions, ..stats.counts },
        latency_ms: LatencySummary::of(&mut stats.latencies),
        late_decisions: stats.sla_misses,
        agreement_ppm: stats.agreement_sum.checked_div(stats.counts.decided).unwrap_or(0),
        byzantine: derived.byzantine.iter().map(|a| a.0).collect(),
        wrongly_flagged: detected.iter().copied().filter(|a| !derived.byzantine.contains(&AgentId(*a))).collect(),
        detected: detected.into_iter().collect(),
        messages: w.counts,
        trace_hash: format!("{:016x}", w.trace.hash()),
        sim_time_ms: end_ms,
        metrics: snapshot,
        alerts,
        deadline_ms: scenario.protocol.deadline_ms,
        agents: scenario.agents.count,
        sessions_over_sla: Some(stats.sessions_over_sla),
        network: crate::summary::network_condition(scenario).to_owned(),
        families: crate::summary::families(scenario),
        wrong_by_cause: stats.wrong_by_cause,
        coverage: Some(CoverageRecord::of(&w.coverage.merged())),
        real: false,
    };
    let trace = std::mem::take(&mut w.trace).into_events();
    RunOutput { record, trace }
}

fn unreachable_poison(scenario: &Scenario, seed: u64) -> ! {
    // The world mutex is only poisoned if a task panicked while holding it, which aborts the
    // simulation first; reaching here is a bug in the simulator itself.
    panic!("simulator bug: world state poisoned in {} seed {seed}", scenario.name)
}

#[derive(Default)]
struct SessionStats {
    counts: SessionCounts,
    sla_misses: u64,
    sessions_over_sla: u64,
    agreement_sum: u64,
    latencies: Vec<u64>,
    detected: BTreeSet<AgentId>,
    wrong_by_cause: WrongByCause,
}

impl SessionStats {
    fn add(
        &mut self,
        w: &World,
        derived: &Derived,
        scenario: &Scenario,
        session: SessionId,
        metrics: &mut MetricsRecorder,
    ) {
        let opened = w.opened.get(&session.0).copied();
        let decisions = w.oracle.decisions().get(&session);
        for d in decisions.into_iter().flat_map(|d| d.values()) {
            let latency = d.at_ms.saturating_sub(opened.unwrap_or(d.at_ms));
            self.latencies.push(latency);
            if latency > scenario.protocol.deadline_ms {
                self.sla_misses += 1;
            }
        }
        let first = decisions.and_then(|d| d.values().min_by_key(|d| d.at_ms));
        let latency = first.map_or(0, |d| d.at_ms.saturating_sub(opened.unwrap_or(d.at_ms)));
        if first.is_some() && latency > scenario.protocol.deadline_ms {
            self.sessions_over_sla += 1;
        }
        let (result, flagged) = match first.map(|d| &d.outcome) {
            None => {
                self.counts.undecided += 1;
                (SessionResult::TimedOut, 0)
            }
            Some(AgreedOutcome::Decided { chosen, method, agreement, byzantine }) => {
                self.counts.decided += 1;
                self.agreement_sum += u64::from(agreement.raw());
                if derived.best.get(&session) == Some(chosen) {
                    self.counts.correct += 1;
                } else {
                    self.wrong(w, derived, session, *chosen);
                }
                let fallback = *method == ConsensusMethod::TimeoutFallback;
                if fallback {
                    self.counts.fallback += 1;
                }
                self.detected.extend(byzantine.iter().copied());
                (SessionResult::Decided { agreement: *agreement, fallback }, byzantine.len())
            }
            Some(AgreedOutcome::Escalated { byzantine, .. }) => {
                self.counts.escalated += 1;
                self.detected.extend(byzantine.iter().copied());
                (SessionResult::Escalated, byzantine.len())
            }
            Some(AgreedOutcome::NoDecision { .. }) => {
                self.counts.no_decision += 1;
                (SessionResult::NoDecision, 0)
            }
        };
        match (w.oracle.influenced(session), first.map(|d| d.outcome.chosen())) {
            (Some(true), _) => self.counts.influenced += 1,
            (Some(false), Some(None)) => self.counts.honest_unresolved += 1,
            // Without Byzantine agents every escalation and "no decision" is honest.
            (None, Some(None)) if derived.byzantine.is_empty() => self.counts.honest_unresolved += 1,
            _ => {}
        }
        let n = scenario.agents.count;
        metrics.record(&SessionOutcome {
            session,
            latency_ms: latency,
            result,
            votes_counted: n.saturating_sub(flagged as u32),
            votes_flagged: flagged as u32,
        });
    }

    /// A session decided for `chosen`, not the best candidate: why (the honest votes alone
    /// would decide the same, or the Byzantine agents changed it, or too few honest agents
    /// voted to tell) and by how many honest votes, and whether beyond the influence bound.
    fn wrong(&mut self, w: &World, derived: &Derived, session: SessionId, chosen: CandidateId) {
        let cause = match w.oracle.influenced(session) {
            Some(true) => WrongCause::Byzantine,
            Some(false) => WrongCause::Honest,
            None if derived.byzantine.is_empty() => WrongCause::Honest,
            None => WrongCause::Unjudged,
        };
        let margin = w.oracle.honest_margin(session, chosen).unwrap_or(0);
        self.wrong_by_cause.add(cause, margin);
        if cause == WrongCause::Byzantine && w.oracle.beyond_influence_bound(session) {
            self.wrong_by_cause.beyond_bound += 1;
        }
    }
}
