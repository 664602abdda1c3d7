//! The shrinker's changes, one test each, with a stand-in oracle.

use super::*;

const BASE: &str = "\
description = \"test\"
[agents]
count = 7
[workload]
sessions = 16
candidates = 4
concurrency = 3
[byzantine]
count = 2
strategy = \"equivocate\"
agents = [5, 6]
[network]
drop = 0.2
duplicate = 0.1
latency_ms = [40, 200]
tail = { kind = \"pareto\" }
[[faults]]
at_ms = 100
kind = \"crash\"
agent = 6
[[faults]]
at_ms = 200
kind = \"partition\"
groups = [[0, 1], [2, 3, 4, 5, 6]]
[[faults]]
at_ms = 300
kind = \"heal\"
[[faults]]
at_ms = 400
kind = \"restart\"
agent = 6
[[faults]]
at_ms = 500
kind = \"clog\"
link = [1, 6]
[expect]
safety = false
liveness = false
";

fn base() -> Scenario {
    scenario::parse(BASE, Path::new("scenarios/base.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn opts(max_runs: usize) -> ShrinkOptions {
    ShrinkOptions { max_runs }
}

#[test]
fn size_is_the_documented_sum() {
    let s = base();
    // faults 5 + agents 7 + byzantine 2 + sessions 16 + candidates 4 + concurrency 3
    // + drop 20 + duplicate 10 + latency 200/10 + tail 1
    assert_eq!(size(&s), 5 + 7 + 2 + 16 + 4 + 3 + 20 + 10 + 20 + 1);
}

#[test]
fn an_always_failing_oracle_shrinks_to_the_floor() {
    let shrunk = shrink(&base(), opts(10_000), |_| Some("agreement".into()), |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let s = &shrunk.scenario;
    assert!(!shrunk.budget_exhausted);
    assert_eq!(shrunk.invariant, "agreement");
    assert!(s.faults.is_empty());
    assert_eq!((s.agents.count, s.byzantine.count, s.byzantine.agents.as_deref()), (1, 0, None));
    assert_eq!((s.workload.sessions, s.workload.candidates, s.workload.concurrency), (1, 2, 1));
    assert_eq!((s.network.drop, s.network.duplicate, s.network.tail), (0.0, 0.0, None));
    assert_eq!(s.network.latency_ms, [1, 1]);
    assert_eq!(shrunk.size, 1 + 1 + 2 + 1);
    assert_eq!(shrunk.original_size, size(&base()));
    // No Byzantine agent is left, so no behaviour is named either.
    assert_eq!(s.byzantine, Byzantine::default());
    // Untouched: protocol, expectations.
    assert_eq!(s.expect, base().expect);
    assert_eq!(s.protocol, base().protocol);
}

#[test]
fn a_different_invariant_is_rejected() {
    // Anything with fewer than 10 sessions fails "liveness" instead: the shrinker must not
    // go below 10 sessions, although those candidates still fail.
    let oracle =
        |s: &Scenario| Some(if s.workload.sessions < 10 { "liveness".to_owned() } else { "agreement".to_owned() });
    let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shrunk.scenario.workload.sessions, 10);
    assert_eq!(shrunk.invariant, "agreement");
    // And a clean run is rejected as well.
    let oracle = |s: &Scenario| (s.agents.count >= 4).then(|| "agreement".to_owned());
    let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shrunk.scenario.agents.count, 4);
}

#[test]
fn the_fault_that_matters_is_kept_with_what_it_needs() {
    // Fails only while the partition is there, and only with agent 6 Byzantine.
    let oracle = |s: &Scenario| {
        let partitioned = s.faults.iter().any(|f| matches!(f.action, FaultAction::Partition { .. }));
        let byz6 = s.byzantine.agents.as_ref().is_some_and(|a| a.contains(&6));
        (partitioned && byz6).then(|| "agreement".to_owned())
    };
    let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let s = &shrunk.scenario;
    assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
    assert!(matches!(s.faults[0].action, FaultAction::Partition { .. }));
    assert_eq!(s.agents.count, 7, "agent 6 must exist");
    assert_eq!(s.byzantine.agents, Some(vec![6]));
    assert!(shrunk.size < shrunk.original_size);
    // Every step was a valid scenario and sizes never grew.
    let sizes: Vec<u64> = shrunk.steps.iter().map(|s| s.size).collect();
    assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
}

#[test]
fn fewer_agents_keep_faults_and_byzantine_lists_valid() {
    let search = Search {
        invariant: String::new(),
        within_liveness_model: false,
        runs: 0,
        max_runs: 1,
        seen: BTreeMap::new(),
        original_byzantine: 2,
        min_candidates: 2,
        steps: vec![],
    };
    let c = search.with_agents(&base(), 3);
    assert_eq!(c.byzantine.count, 2);
    assert_eq!(c.byzantine.agents, None, "5 and 6 are gone, so the list is dropped");
    // The crash/restart of 6 and the clog of link 1–6 are gone; the partition keeps
    // [[0, 1], [2]].
    let kinds: Vec<&FaultAction> = c.faults.iter().map(|f| &f.action).collect();
    assert_eq!(
        kinds,
        vec![&FaultAction::Partition { groups: vec![vec![0, 1], vec![2]], one_way: false }, &FaultAction::Heal]
    );
    let text = to_text(&c).unwrap_or_default();
    assert!(scenario::parse(&text, Path::new("x.toml")).is_ok(), "{text}");
    let c = search.with_agents(&base(), 1);
    assert_eq!(c.byzantine.count, 1);
    assert!(c.faults.iter().all(|f| f.action == FaultAction::Heal));
}

/// `bftsim explore --seed 3` run 10316 (twins): agent 0 is a twin, its second copy sits in
/// a round-0 partition with agent 2. Its liveness failure does not need the twin, so the
/// twin is the first thing the shrinker removes, and then one agent; the minimized file
/// used to keep `byzantine.strategy = "twin"` and so read as a twin in a committee of 3
/// (f_max = 0), whose liveness is not promised.
const TWINS_10316: &str = "\
[agents]
count = 4
[byzantine]
agents = [0]
count = 1
strategy = \"twin\"
[network]
drop = 0.09
latency_ms = [1, 20]
[[round_partitions]]
groups = [[0, 1, 3], [2, \"0'\"]]
round = 0
session = 0
until_ms = 964
[workload]
candidates = 3
sessions = 1
";

#[test]
fn a_shrunk_file_names_no_behaviour_that_no_agent_has() {
    let original = scenario::parse(TWINS_10316, Path::new("twins.toml")).unwrap_or_else(|e| panic!("{e}"));
    // Fails whatever the Byzantine agents, while agent 2 exists.
    let oracle = |s: &Scenario| (s.agents.count >= 3).then(|| "liveness".to_owned());
    let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let s = &shrunk.scenario;
    assert_eq!((s.agents.count, s.byzantine.count), (3, 0));
    assert_eq!(s.byzantine, Byzantine::default());
    let text = render(&shrunk, Path::new("twins.toml"), &[], 5, Path::new("out/twins.min.toml"));
    assert!(!text.contains("twin\""), "a run without a twin, written as one:\n{text}");
    assert!(!text.contains("0'"), "{text}");
    // The committee of 3 with nobody faulty promises liveness: the finding stands.
    let back = scenario::parse(&text, Path::new("out/twins.min.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(back.promises_liveness() && back.default_liveness());
    // A mix keeps only the behaviours of the agents it still has.
    let mut mixed = original.clone();
    mixed.byzantine.strategies = Some(vec![scenario::Behaviour::Twin, scenario::Behaviour::Honest]);
    forget_unused_behaviours(&mut mixed);
    assert_eq!(mixed.byzantine.strategies, Some(vec![scenario::Behaviour::Twin]));
}

/// A finding of a `full-power` agent shrinks to the families and the rate it needs; the knobs
/// go back to their defaults when no agent runs it any more.
#[test]
fn full_power_findings_shrink_to_the_families_they_need() {
    use consensus_core::adversary::Family;
    let text = "[agents]\ncount = 4\n[byzantine]\ncount = 1\nstrategy = \"full-power\"\nagents = [0]\n\
                [expect]\nsafety = false\n";
    let original = scenario::parse(text, Path::new("fp.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(full_power_size(&original), 8 + 10 + 2, "every family, rate 0.1, 2 actions");
    // Fails while a full-power agent sends round votes at a rate of at least 0.05.
    let oracle = |s: &Scenario| {
        let k = &s.byzantine.full_power;
        (uses_full_power(s) && k.families.contains(&Family::RoundVotes) && k.rate >= 0.05)
            .then(|| "agreement".to_owned())
    };
    let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let k = &shrunk.scenario.byzantine.full_power;
    assert_eq!((k.families.as_slice(), k.rate, k.actions_per_input), (&[Family::RoundVotes][..], 0.05, 1));
    let text = render(&shrunk, Path::new("fp.toml"), &[], 5, Path::new("out/fp.min.toml"));
    assert!(text.contains("families = [\"round-votes\"]"), "{text}");
    let back = scenario::parse(&text, Path::new("out/fp.min.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.byzantine.full_power, *k);
    // Without a full-power agent, the knobs are forgotten (and cost nothing).
    let mut other = shrunk.scenario.clone();
    other.byzantine.strategy = scenario::Behaviour::Twin;
    forget_unused_behaviours(&mut other);
    assert!(other.byzantine.full_power.is_default() && full_power_size(&other) == 0);
}

#[test]
fn storage_settings_a_finding_does_not_need_are_dropped() {
    let text = "[agents]\ncount = 4\n[storage]\ncrash = \"prefix\"\nsync_ms = 18\ncompact_log_bytes = 4096\n\
                [[faults]]\nat_ms = 10\nkind = \"crash\"\nagent = 1\n[expect]\nsafety = false\n";
    let original = scenario::parse(text, Path::new("disk.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(storage_size(&original), 3);
    // Fails while fsyncs are slow, whatever a crash keeps, with or without the crash.
    let oracle = |s: &Scenario| (s.storage.sync_ms > 0).then(|| "liveness".to_owned());
    let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let st = shrunk.scenario.storage;
    assert_eq!((st.crash, st.sync_ms, st.compact_log_bytes), (scenario::CrashLoss::Any, 18, None));
    assert!(shrunk.scenario.faults.is_empty());
    let rendered = render(&shrunk, Path::new("disk.toml"), &[], 5, Path::new("out/disk.min.toml"));
    assert!(!rendered.contains("crash = \"prefix\""), "{rendered}");
}

#[test]
fn a_liveness_violation_stays_within_the_fault_model() {
    // The twin is needed, and the file says `expect.liveness = true`: without the model's
    // promise kept, the shrinker went down to one agent (a Byzantine one) with liveness
    // still checked, because the file said so.
    let text = format!("{TWINS_10316}[expect]\nliveness = true\n");
    let original = scenario::parse(&text, Path::new("twins.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(original.default_liveness());
    let oracle = |s: &Scenario| (s.byzantine.count >= 1).then(|| "liveness".to_owned());
    let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let s = &shrunk.scenario;
    assert_eq!((s.agents.count, s.byzantine.count), (4, 1), "n ≥ 3f + 1 is kept");
    assert!(s.default_liveness());
    // A safety violation is not bound by it: what safety the committee still promises
    // beyond f_max is the oracle's to say (`oracle::Promises`, quorum arithmetic).
    let oracle = |s: &Scenario| (s.byzantine.count >= 1).then(|| "agreement".to_owned());
    let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((shrunk.scenario.agents.count, shrunk.scenario.byzantine.count), (1, 1));
}

#[test]
fn removing_a_crash_takes_its_restart_along() {
    let faults = consistent(base().faults.into_iter().skip(1).collect());
    assert!(faults.iter().all(|f| !matches!(f.action, FaultAction::Restart { .. })));
    assert_eq!(faults.len(), 3);
}

#[test]
fn the_budget_bounds_the_runs() {
    let mut calls = 0;
    let shrunk = shrink(
        &base(),
        opts(5),
        |_| {
            calls += 1;
            Some("agreement".into())
        },
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((calls, shrunk.runs), (5, 5));
    assert!(shrunk.budget_exhausted);
    assert!(shrunk.size < shrunk.original_size);
}

#[test]
fn nothing_to_shrink_and_sweeps_are_errors() {
    assert_eq!(shrink(&base(), opts(10), |_| None, |_| {}).err(), Some(ShrinkError::NoFailure));
    let sweep = scenario::parse("[sweep]\n\"network.drop\" = [0.0, 0.1]\n", Path::new("s.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shrink(&sweep, opts(10), |_| Some("x".into()), |_| {}).err(), Some(ShrinkError::Sweep));
    assert_eq!(shrink(&base(), opts(0), |_| Some("x".into()), |_| {}).err(), Some(ShrinkError::NoBudget));
}

#[test]
fn the_rendered_file_parses_back_with_a_header() {
    let shrunk = shrink(&base(), opts(30), |_| Some("agreement".into()), |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let out = Path::new("out/base-seed7.min.toml");
    let text = render(&shrunk, Path::new("scenarios/base.toml"), &[], 7, out);
    assert!(text.starts_with("# Minimized by `bftsim shrink` from scenarios/base.toml at seed 7: "), "{text}");
    assert!(text.contains("still violates `agreement`"));
    assert!(text.contains("bftsim reproduce out/base-seed7.min.toml --seed 7"));
    assert!(text.contains(&format!("size {} → {}", shrunk.original_size, shrunk.size)));
    assert!(text.lines().count() <= 15, "{text}");
    let back = scenario::parse(&text, out).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.name, "base-min");
    assert!(back.sweep.is_empty());
    assert_eq!(size(&back), shrunk.size);
    assert_eq!(
        (back.workload, back.network, back.faults),
        (shrunk.scenario.workload, shrunk.scenario.network, shrunk.scenario.faults.clone())
    );
}

#[test]
fn value_candidates() {
    assert_eq!(lower(20, 1), vec![1, 10, 19]);
    assert_eq!(lower(2, 1), vec![1]);
    assert_eq!(lower(3, 2), vec![2]);
    assert_eq!(lower(1, 1), Vec::<u64>::new());
    assert_eq!(lower_probability(0.2), vec![0.0, 0.1, 0.19]);
    assert_eq!(lower_probability(0.05), vec![0.0, 0.02, 0.04]);
    assert_eq!(lower_probability(0.01), vec![0.0]);
    assert_eq!(lower_probability(0.0), Vec::<f64>::new());
}
