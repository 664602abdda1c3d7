use super::load::*;
use super::*;

const ISSUE_EXAMPLE: &str = r#"name = "one-equivocator"            # defaults to the file stem
description = "..."
[agents]
count = 5                           # specializations cycle retriever, analyzer, validator, reranker, monitor
[protocol]
threshold = 0.66
deadline_ms = 500
fallback = "none"                   # none | simple-majority
detector = "mean-deviation"         # mean-deviation | median-mad | none
mutation = "none"                   # none | quorum-one-short | no-locking | skip-signature-check | local-timeout-fallback
[workload]
sessions = 10                       # vote sessions per run
candidates = 3
[byzantine]
count = 1                           # which agents: drawn from the seed
strategy = "equivocate"
[network]
drop = 0.05
latency_ms = [1, 50]
[[faults]]
at_ms = 100
kind = "crash"                      # partition | heal | crash | restart | clog | unclog
agent = 2
[[faults]]
at_ms = 600
kind = "partition"
groups = [[0, 1], [2, 3, 4]]
[[faults]]
at_ms = 1200
kind = "heal"
[expect]
safety = true                       # false: the scenario passes only if a violation is found
liveness = true                     # true: every honest agent must decide every session
"#;

fn ok(text: &str) -> Scenario {
    parse(text, Path::new("scenarios/x.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ScenarioError {
    match parse(text, Path::new("scenarios/x.toml")) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e,
    }
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_bundled_scenario_loads_and_validates() {
    let files = discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}"));
    assert!(files.len() >= 22, "only {} bundled scenarios", files.len());
    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_stem()).map(|s| s.to_string_lossy().into_owned()).collect();
    let required = [
        "baseline",
        "byz-silent",
        "byz-vote-worst",
        "byz-random",
        "byz-equivocate",
        "byz-inflate-confidence",
        "byz-delay-to-deadline",
        "byz-collude",
        "byz-adaptive",
        "byz-bad-proposer",
        "byz-replay",
        "byz-forge",
        "byz-full-power",
        "net-drops",
        "net-latency-tail",
        "partition-heal",
        "crash-restart",
        "two-byzantine-of-five",
        "n4-fmax",
        "n7-fmax",
        "n10-fmax",
        "n31-fmax",
        "design-fallback",
        "mut-quorum-one-short",
        "mut-no-locking",
        "mut-skip-signature-check",
        "mut-local-timeout-fallback",
        "sweep-drop-byzantine",
    ];
    for name in required {
        assert!(names.iter().any(|n| n == name), "scenarios/{name}.toml is missing");
    }
    for file in &files {
        let s = load(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.description.is_empty() && !s.description.contains('\n'), "{}: one-line description", s.name);
        assert!(s.workload.sessions <= 40, "{}: keep the suite fast", s.name);
        assert_eq!(s.expect.safety, s.protocol.mutation == Mutation::None, "{}: mutations expect a violation", s.name);
        if s.protocol.mutation != Mutation::None {
            assert!(s.expect.invariant.is_some(), "{}: name the invariant", s.name);
        }
        for (_, expanded) in s.expand().unwrap_or_else(|e| panic!("{e}")) {
            assert!(expanded.sweep.is_empty());
        }
    }
}

#[test]
fn bundled_scenarios_say_what_they_exercise() {
    let load_named = |name: &str| load(&suite_dir().join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
    for strategy in ByzantineStrategy::ALL {
        let s = load_named(&format!("byz-{strategy}"));
        assert_eq!(s.byzantine.strategy, Behaviour::Core(strategy));
        assert!(s.promises_liveness(), "{}", s.name);
    }
    let collude = load_named("byz-collude");
    assert_eq!((collude.agents.count, collude.byzantine.count), (7, 2));
    let halted = load_named("two-byzantine-of-five");
    assert!(halted.expect.safety && !halted.promises_liveness());
    assert!(!halted.audit().is_sound());
    for (n, f) in [(4, 1), (7, 2), (10, 3), (31, 10)] {
        let s = load_named(&format!("n{n}-fmax"));
        assert_eq!((s.agents.count, s.byzantine.count, s.f_max()), (n, f, f));
        // Counted per agent the committee is sound; by weight 66% is not for every n (n = 7).
        let audit = s.audit();
        let count_errors =
            audit.findings.iter().filter(|f| f.severity == Severity::Error && f.code.starts_with("count-")).count();
        assert_eq!(count_errors, 0, "{audit}");
    }
    let fallback = load_named("design-fallback");
    assert_eq!(fallback.protocol.fallback, FallbackPolicy::SimpleMajority);
    assert!(fallback.faults.iter().any(|f| f.at_ms > fallback.protocol.deadline_ms + 100));
    for (name, mutation, invariant) in [
        ("mut-quorum-one-short", Mutation::QuorumOneShort, "agreement"),
        ("mut-no-locking", Mutation::NoLocking, "lock-respected"),
        ("mut-polka-not-relayed", Mutation::PolkaNotRelayed, "valid-value"),
        ("mut-repropose-fresh-value", Mutation::ReproposeFreshValue, "valid-value"),
        ("mut-duplicate-votes-counted", Mutation::DuplicateVotesCounted, "valid-value"),
        ("mut-skip-signature-check", Mutation::SkipSignatureCheck, "evidence-sound"),
        ("mut-local-timeout-fallback", Mutation::LocalTimeoutFallback, "agreement"),
        ("mut-forget-lock-on-restart", Mutation::ForgetLockOnRestart, "no-equivocation-across-restarts"),
        ("mut-skip-checksum", Mutation::SkipChecksum, "corruption-detected"),
        ("mut-ack-before-durable", Mutation::AckBeforeDurable, "acknowledged-durable"),
    ] {
        let s = load_named(name);
        assert_eq!(s.protocol.mutation, mutation);
        assert_eq!(s.expect.invariant.as_deref(), Some(invariant));
    }
    assert_eq!(load_named("mut-skip-signature-check").byzantine.strategy, Behaviour::Core(ByzantineStrategy::Forge));
    // The disk scenarios: what a crash keeps, and the disk faults, as written.
    assert_eq!(load_named("disk-crash-lose").storage.crash, CrashLoss::Lose);
    assert_eq!(load_named("disk-crash-torn").storage.crash, CrashLoss::Torn);
    let slow = load_named("disk-slow");
    assert_eq!(slow.storage.sync_ms, 5);
    assert_eq!(slow.faults[0].action, FaultAction::SlowDisk { agent: 1, sync_ms: 40 });
    assert_eq!(load_named("disk-compact").storage.compact_log_bytes, Some(4_096));
    for (name, agent) in [("disk-flip-bit", 2), ("disk-fail-sync", 1), ("disk-full", 4)] {
        let s = load_named(name);
        assert_eq!(s.disk_stopped_agents(), [agent].into(), "{name}");
        assert!(s.promises_liveness(), "{name}: one stopped agent is within f = 1");
    }
}

#[test]
fn the_issue_example_parses() {
    let s = ok(ISSUE_EXAMPLE);
    assert_eq!(s.name, "one-equivocator");
    assert_eq!(s.agents.count, 5);
    assert_eq!(s.byzantine.strategy, Behaviour::Core(ByzantineStrategy::Equivocate));
    assert_eq!(s.network.drop, 0.05);
    assert_eq!(s.network.latency_ms, [1, 50]);
    assert_eq!(s.faults.len(), 3);
    assert_eq!(s.faults[0].action, FaultAction::Crash { agent: 2 });
    assert_eq!(s.faults[1].action, FaultAction::Partition { groups: vec![vec![0, 1], vec![2, 3, 4]], one_way: false });
    assert_eq!(s.faults[2], Fault { at_ms: 1200, action: FaultAction::Heal });
    assert!(s.expect.safety && s.promises_liveness());
}

/// (text, line, column, substrings of the message)
type Case = (&'static str, usize, usize, &'static [&'static str]);

#[test]
fn invalid_files_point_at_the_offending_value() {
    let cases: &[Case] = &[
            (
                "[network]\ndrop = 1.7\n",
                2,
                8,
                &["network.drop = 1.7 is not a probability: expected a number between 0.0 and 1.0"],
            ),
            ("[network]\nlatency_ms = [50, 1]\n", 2, 14, &["network.latency_ms = [50, 1] is upside down", "min ≤ max"]),
            (
                "[agents]\ncount = 5\n[byzantine]\ncount = 6\n",
                4,
                9,
                &["byzantine.count = 6 is more than agents.count = 5", "at most 5"],
            ),
            ("[byzantine]\ncount = 6\n", 2, 9, &["agents.count = 5"]),
            (
                "[network]\ndorp = 0.1\n",
                2,
                1,
                &["network.dorp: unknown field `dorp`", "`drop`", "`latency_ms`", "`tail`", "`duplicate`", "spelling"],
            ),
            (
                "[byzantine]\ncount = 1\nstrategy = \"vote-wurst\"\n",
                3,
                12,
                &["byzantine.strategy: unknown variant `vote-wurst`", "`vote-worst`", "`forge`"],
            ),
            (
                "[[faults]]\nat_ms = 100\nkind = \"crash\"\nagent = 7\n",
                4,
                9,
                &["faults[0].agent = 7 is not an agent: expected an index from 0 to 4"],
            ),
            ("[network\ndrop = 0.1\n", 1, 9, &["TOML syntax error", "unclosed table"]),
            ("drop = 0.1\n", 1, 1, &["unknown field `drop`", "`network`"]),
            ("[network]\ndrop = \"high\"\n", 2, 8, &["network.drop: invalid type: string \"high\""]),
            ("[agents]\ncount = 0\n", 2, 9, &["agents.count = 0 is out of range: expected 1 to 256"]),
            ("[protocol]\nthreshold = 0.0\n", 2, 13, &["protocol.threshold = 0 is not a threshold"]),
            ("[protocol]\nthreshold = nan\n", 2, 13, &["protocol.threshold = NaN"]),
            ("[protocol]\nreplace = true\n", 2, 11, &["agents.spares = 0"]),
            ("[protocol]\nmutation = \"no-locks\"\n", 2, 12, &["unknown variant `no-locks`", "`no-locking`"]),
            ("[workload]\nsessions = 100001\n", 2, 12, &["workload.sessions = 100001 is out of range"]),
            ("[workload]\nquality_gap = -0.1\n", 2, 15, &["workload.quality_gap = -0.1"]),
            ("[evaluator.monitor]\nconfidence = [0.9, 0.7]\n", 2, 14, &["evaluator.monitor.confidence = [0.9, 0.7] is upside down"]),
            ("[evaluator.monitor]\nconfidence = [0.5, 1.2]\n", 2, 20, &["evaluator.monitor.confidence[1] = 1.2"]),
            ("[evaluator.critic]\nnoise = 0.1\n", 1, 12, &["evaluator.critic: unknown field `critic`", "`retriever`"]),
            ("[byzantine]\ncount = 2\nagents = [1]\n", 3, 10, &["byzantine.agents lists 1 agents but byzantine.count = 2"]),
            ("[byzantine]\ncount = 2\nagents = [1, 1]\n", 3, 14, &["lists agent 1 twice"]),
            ("[byzantine]\ncount = 1\nagents = [5]\n", 3, 11, &["byzantine.agents[0] = 5 is not an agent"]),
            ("[network]\ntail = { kind = \"pareto\", shape = 0.0 }\n", 2, 35, &["network.tail.shape = 0 is not a Pareto shape"]),
            ("[network]\ntail = { kind = \"pareto\", scale_ms = 50, max_ms = 10 }\n", 2, 51, &["network.tail.max_ms = 10 is below scale_ms = 50"]),
            ("[network]\ntail = { scale_ms = 5 }\n", 2, 8, &["network.tail: missing field `kind`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crsh\"\n", 3, 8, &["faults[0].kind: unknown variant `crsh`", "`partition`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crash\"\nagnt = 2\n", 4, 1, &["faults[0].agnt: unknown field `agnt`", "`agent`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"heal\"\nagent = 2\n", 4, 9, &["faults[0].agent is not a key of a heal fault", "no other keys"]),
            ("[[faults]]\nkind = \"heal\"\n", 1, 1, &["missing field `at_ms`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crash\"\n", 3, 8, &["faults[0] is a crash fault and needs agent = <index>"]),
            ("[[faults]]\nat_ms = 1\nkind = \"clog\"\nagent = 1\nlink = [0, 1]\n", 5, 8, &["both agent and link"]),
            ("[[faults]]\nat_ms = 1\nkind = \"clog\"\nlink = [2, 2]\n", 4, 8, &["joins an agent to itself"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0, 1]]\n", 4, 10, &["at least two groups"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0, 1], [1, 2]]\n", 4, 20, &["agent 1 is in two groups"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0], []]\n", 4, 16, &["faults[0].groups[1] is empty"]),
            (
                "[[faults]]\nat_ms = 900\nkind = \"restart\"\nagent = 1\n[[faults]]\nat_ms = 1000\nkind = \"crash\"\nagent = 1\n",
                4,
                9,
                &["faults[0] restarts agent 1 at 900 ms, but it is not crashed then"],
            ),
            ("[[faults]]\nat_ms = 1\nkind = \"slow-disk\"\nagent = 1\n", 3, 8, &["faults[0] is a slow-disk fault and needs sync_ms"]),
            ("[[faults]]\nat_ms = 1\nkind = \"slow-disk\"\nagent = 1\nsync_ms = 20000\n", 5, 11, &["faults[0].sync_ms = 20000 is out of range"]),
            ("[[faults]]\nat_ms = 1\nkind = \"flip-bit\"\nagent = 1\nsync_ms = 3\n", 5, 11, &["faults[0].sync_ms is not a key of a flip-bit fault", "at_ms, kind and agent"]),
            ("[[faults]]\nat_ms = 1\nkind = \"disk-full\"\nagent = 9\n", 4, 9, &["faults[0].agent = 9 is not an agent"]),
            ("[storage]\ncrash = \"half\"\n", 2, 9, &["storage.crash: unknown variant `half`", "`torn`"]),
            ("[storage]\nsync_ms = 99999\n", 2, 11, &["storage.sync_ms = 99999 is out of range"]),
            ("[storage]\ncompact_log_bytes = 10\n", 2, 21, &["storage.compact_log_bytes = 10 is too small", "1024 bytes"]),
            ("[protocol]\nkeep_decided = 0\n", 2, 16, &["protocol.keep_decided = 0 is too small"]),
            ("[expect]\ncatch_up_ms = 0\n", 2, 15, &["expect.catch_up_ms = 0 is too small"]),
            ("[expect]\ninvariant = \"agreement\"\n", 2, 13, &["needs expect.safety = false"]),
            ("[expect]\nsafety = false\ninvariant = \"agrement\"\n", 3, 13, &["not an invariant", "external-validity"]),
            ("name = \"\"\n", 1, 8, &["name = \"\" is not usable"]),
            ("[byzantine.full_power]\nrate = 1.5\n", 2, 8, &["byzantine.full_power.rate = 1.5 is not a probability"]),
            ("[byzantine.full_power]\nactions_per_input = 0\n", 2, 21, &["actions_per_input = 0 is out of range", "1 to 16"]),
            ("[byzantine.full_power]\nfamilies = [\"votes\", \"votes\"]\n", 2, 22, &["lists `votes` twice"]),
            ("[byzantine.full_power]\nfamilies = [\"vots\"]\n", 2, 13, &["unknown variant `vots`", "`round-votes`", "`deviate`"]),
            ("[byzantine.full_power]\nrat = 0.1\n", 2, 1, &["unknown field `rat`", "`rate`", "`families`"]),
        ];
    for (text, line, column, needles) in cases {
        let e = err(text);
        assert_eq!((e.line, e.column), (*line, *column), "{text:?} → {e}");
        for needle in *needles {
            assert!(e.message.contains(needle), "{text:?}: {:?} lacks {needle:?}", e.message);
        }
        assert_eq!(e.to_string(), format!("scenarios/x.toml:{line}:{column}: {}", e.message));
    }
}

#[test]
fn defaults_and_the_file_stem() {
    let s = parse("", Path::new("some/dir/my-scenario.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "my-scenario");
    assert_eq!(s.description, "");
    assert_eq!(s.agents, Agents { count: 5, spares: 0 });
    assert_eq!(s.protocol, Protocol::default());
    assert_eq!(s.workload, Workload { sessions: 10, candidates: 3, concurrency: 1, quality_gap: 0.3 });
    assert_eq!(
        s.byzantine,
        Byzantine { count: 0, strategy: Behaviour::Core(ByzantineStrategy::Silent), ..Byzantine::default() }
    );
    assert_eq!(s.network, Network { drop: 0.0, latency_ms: [1, 10], tail: None, duplicate: 0.0 });
    assert_eq!(
        s.expect,
        Expect {
            safety: true,
            liveness: None,
            liveness_bound_ms: 30_000,
            liveness_rounds: None,
            invariant: None,
            catch_up_ms: 10_000,
        }
    );
    assert!(s.faults.is_empty() && s.sweep.is_empty());
    assert!(s.promises_liveness());
    let tail = ok("[network]\ntail = { kind = \"pareto\" }\n").network.tail;
    assert_eq!(tail, Some(LatencyTail { kind: TailKind::Pareto, scale_ms: 5, shape: 1.5, max_ms: 2_000 }));
}

#[test]
fn liveness_default_follows_the_fault_assumption() {
    let cases = [
            ("", true),
            ("[byzantine]\ncount = 1\n", true),
            ("[byzantine]\ncount = 2\n", false),
            ("[agents]\ncount = 7\n[byzantine]\ncount = 2\n", true),
            ("[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n", false),
            ("[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n[[faults]]\nat_ms = 9\nkind = \"heal\"\n", true),
            // A heal written before the partition but happening earlier does not count.
            ("[[faults]]\nat_ms = 1\nkind = \"heal\"\n[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n", false),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n", false),
            // Agent 0 hosts the session opener: down for good, no session opens again.
            ("[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n", false),
            ("[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 1\n", true),
            // A disk fault that stops its agent counts as a crash that never restarts.
            ("[[faults]]\nat_ms = 5\nkind = \"fail-sync\"\nagent = 1\n", true),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"disk-full\"\nagent = 1\n", false),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"flip-bit\"\nagent = 1\n", false),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"slow-disk\"\nagent = 1\nsync_ms = 9\n", true),
            ("[[faults]]\nat_ms = 5\nkind = \"fail-sync\"\nagent = 0\n", false),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n[[faults]]\nat_ms = 6\nkind = \"restart\"\nagent = 0\n", true),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"clog\"\nlink = [0, 1]\n", false),
            ("[network]\ndrop = 1.0\n", false),
            ("[byzantine]\ncount = 2\n[expect]\nliveness = true\n", true),
            ("[expect]\nliveness = false\n", false),
        ];
    for (text, live) in cases {
        assert_eq!(ok(text).promises_liveness(), live, "{text:?}");
    }
}

#[test]
fn faults_are_sorted_stably_by_time() {
    let s = ok("[[faults]]\nat_ms = 900\nkind = \"heal\"\n\
                    [[faults]]\nat_ms = 100\nkind = \"clog\"\nagent = 3\n\
                    [[faults]]\nat_ms = 100\nkind = \"crash\"\nagent = 1\n\
                    [[faults]]\nat_ms = 50\nkind = \"unclog\"\nlink = [4, 0]\n");
    let order: Vec<(u64, &FaultAction)> = s.faults.iter().map(|f| (f.at_ms, &f.action)).collect();
    assert_eq!(
        order,
        vec![
            (50, &FaultAction::Unclog { target: ClogTarget::Link([4, 0]) }),
            (100, &FaultAction::Clog { target: ClogTarget::Agent(3) }),
            (100, &FaultAction::Crash { agent: 1 }),
            (900, &FaultAction::Heal),
        ]
    );
}

const SWEEP: &str = "[byzantine]\nstrategy = \"silent\"\n[sweep]\n\"byzantine.count\" = [0, 1, 2]\n\"network.drop\" = [0.0, 0.05, 0.1, 0.2]\n";

#[test]
fn sweep_expands_to_the_cartesian_product() {
    let s = parse(SWEEP, Path::new("scenarios/sweep.toml")).unwrap_or_else(|e| panic!("{e}"));
    let runs = s.expand().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.len(), 12);
    let (labels, first) = &runs[0];
    assert_eq!(
        labels,
        &vec![("byzantine.count".to_owned(), "0".to_owned()), ("network.drop".to_owned(), "0.0".to_owned())]
    );
    assert_eq!(first.name, "sweep[byzantine.count=0,network.drop=0.0]");
    let (labels, sixth) = &runs[5];
    assert_eq!(labels[0].1, "1");
    assert_eq!(labels[1].1, "0.05");
    assert_eq!(sixth.name, "sweep[byzantine.count=1,network.drop=0.05]");
    assert_eq!((sixth.byzantine.count, sixth.network.drop), (1, 0.05));
    assert_eq!(sixth.byzantine.strategy, Behaviour::Core(ByzantineStrategy::Silent));
    for (labels, run) in &runs {
        assert!(run.sweep.is_empty());
        assert_eq!(run.path, Path::new("scenarios/sweep.toml"));
        assert_eq!(run.promises_liveness(), run.byzantine.count <= 1, "{labels:?}");
        let again = run.expand().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.len(), 1);
        assert!(again[0].0.is_empty());
    }
    let drops: Vec<f64> = runs.iter().map(|(_, r)| r.network.drop).collect();
    assert_eq!(drops[..4], [0.0, 0.05, 0.1, 0.2]);
    let bundled = load(&suite_dir().join("sweep-drop-byzantine.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bundled.expand().map(|r| r.len()).unwrap_or(0), 12);
    assert_eq!(ok("").expand().map(|r| r.len()).unwrap_or(0), 1);
}

#[test]
fn invalid_sweep_values_name_the_sweep_key() {
    let cases: &[Case] = &[
        (
            "[sweep]\n\"network.drop\" = [0.1, 1.7]\n",
            2,
            24,
            &["sweep \"network.drop\"", "network.drop = 1.7 is not a probability"],
        ),
        (
            "[sweep]\n\"agents.count\" = [5, 4]\n\"byzantine.count\" = [2, 6]\n",
            3,
            25,
            &["sweep \"byzantine.count\"", "agents.count=5, byzantine.count=6", "byzantine.count = 6 is more than"],
        ),
        ("[sweep]\n\"netwrk.drop\" = [0.1]\n", 2, 18, &["sweep \"netwrk.drop\"", "unknown field `netwrk`"]),
        (
            "[sweep]\n\"byzantine.strategy\" = [\"silent\", \"lie\"]\n",
            2,
            35,
            &["sweep \"byzantine.strategy\"", "unknown variant `lie`"],
        ),
        ("[sweep]\n\"network.drop\" = []\n", 2, 18, &["sweep \"network.drop\" has no values"]),
        ("[sweep]\n\"name\" = [\"a\"]\n", 2, 10, &["cannot be swept"]),
        ("[sweep]\n\"network.drop.x\" = [1]\n", 2, 21, &["network.drop: invalid type: map, expected a number"]),
        ("[network]\ndrop = 0.1\n[sweep]\n\"network.drop.x\" = [1]\n", 4, 21, &["network.drop is not a table"]),
        ("[sweep]\nnetwork.drop = [0.1]\n", 2, 1, &["sweep.network", "quote dotted sweep keys"]),
    ];
    for (text, line, column, needles) in cases {
        let e = err(text);
        assert_eq!((e.line, e.column), (*line, *column), "{text:?} → {e}");
        for needle in *needles {
            assert!(e.message.contains(needle), "{text:?}: {:?} lacks {needle:?}", e.message);
        }
    }
}

#[test]
fn engine_and_protocol_configs_follow_the_file() {
    let s = ok("[agents]\ncount = 7\nspares = 2\n\
                    [protocol]\nthreshold = 0.75\ndeadline_ms = 800\nfallback = \"simple-majority\"\n\
                    detector = \"median-mad\"\nmutation = \"no-locking\"\nagreement_basis = \"weight\"\n\
                    conflict_policy = \"escalate\"\ndetector_threshold = 0.25\ndetector_window = 40\n\
                    exclude_after = 2\nquarantine_sessions = 4\nreplace = true\nearly_unanimous = false\n\
                    vote_collect_ms = 120\ntimeout_propose_ms = 300\ntimeout_prevote_ms = 60\n\
                    timeout_precommit_ms = 70\ntimeout_delta_ms = 25\nretransmit_ms = 90\n\
                    [workload]\nconcurrency = 3\n");
    let e = s.engine_config();
    assert_eq!(e.threshold, Ratio::new(3, 4).unwrap_or(Ratio::HALF));
    assert_eq!(e.deadline_ms, 800);
    assert_eq!(e.fallback, FallbackPolicy::SimpleMajority);
    assert_eq!(
        e.detector,
        DetectorConfig { kind: DetectorKind::MedianMad, threshold: Ppm::saturating(250_000), window: 40 }
    );
    assert_eq!(e.quarantine, QuarantineConfig { sessions: 4, exclude_after: 2, min_active: 7, replace: true });
    assert_eq!(e.agreement_basis, AgreementBasis::Weight);
    assert_eq!(e.conflict_policy, ConflictPolicy::Escalate);
    assert!(!e.early_unanimous);
    assert_eq!(e.cache, EngineConfig::default().cache);
    let p = s.protocol_config();
    assert_eq!(
        (p.vote_collect_ms, p.timeout_propose_ms, p.timeout_prevote_ms, p.timeout_precommit_ms),
        (120, 300, 60, 70)
    );
    assert_eq!((p.timeout_delta_ms, p.retransmit_ms, p.pipeline, p.mutation), (25, 90, 3, Mutation::NoLocking));
    assert_eq!(p.client, ProtocolConfig::default().client);

    let d = ok("");
    let engine = d.engine_config();
    assert_eq!(engine.threshold, Ratio::SEED_THRESHOLD);
    assert_eq!(engine.detector, EngineConfig::default().detector);
    assert_eq!(d.protocol_config(), ProtocolConfig::default());
    let audit = d.audit();
    assert_eq!((audit.n, audit.f, audit.quorum), (5, 1, 4));
    assert!(audit.is_sound(), "{audit}");
}

#[test]
fn evaluator_overrides_keep_the_other_seed_defaults() {
    let s =
        ok("[evaluator.monitor]\nnoise = 0.25\n[evaluator.retriever]\nlatency_ms = [1, 2]\nconfidence = [0.5, 0.6]\n");
    let monitor = s.evaluator_profile(AgentSpecialization::Monitor);
    let seed_monitor = EvaluatorProfile::seed_default(AgentSpecialization::Monitor);
    assert_eq!(monitor.noise, Ppm::saturating(250_000));
    assert_eq!((monitor.latency_ms, monitor.confidence), (seed_monitor.latency_ms, seed_monitor.confidence));
    let retriever = s.evaluator_profile(AgentSpecialization::Retriever);
    assert_eq!(retriever.latency_ms, (1, 2));
    assert_eq!(retriever.confidence, (Ppm::saturating(500_000), Ppm::saturating(600_000)));
    assert_eq!(retriever.noise, EvaluatorProfile::seed_default(AgentSpecialization::Retriever).noise);
    for spec in [AgentSpecialization::Analyzer, AgentSpecialization::Validator, AgentSpecialization::Reranker] {
        assert_eq!(s.evaluator_profile(spec), EvaluatorProfile::seed_default(spec));
    }
}

#[test]
fn a_scenario_written_back_reads_the_same() {
    for file in discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}")) {
        let s = load(&file).unwrap_or_else(|e| panic!("{e}"));
        let text = toml::to_string(&s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let back = parse(&text, &file).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(toml::to_string(&back).ok(), Some(text), "{}", s.name);
    }
}

#[test]
fn the_examples_in_the_reference_parse() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md");
    let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let blocks: Vec<&str> = text.split("```toml\n").skip(1).filter_map(|rest| rest.split("```").next()).collect();
    assert!(blocks.len() >= 2, "docs/scenarios.md has no toml examples");
    for block in blocks {
        let s = parse(block, Path::new("docs/example.toml")).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert!(s.expand().is_ok());
    }
}

#[test]
fn discover_sorts_directories_and_reports_missing_paths() {
    let files = discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}"));
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    let single = suite_dir().join("baseline.toml");
    assert_eq!(discover(std::slice::from_ref(&single)).ok(), Some(vec![single]));
    let missing = PathBuf::from("no/such/scenario.toml");
    let e = discover(std::slice::from_ref(&missing)).err().unwrap_or_else(|| panic!("missing path accepted"));
    assert_eq!(e.to_string(), "no/such/scenario.toml: no such scenario file or directory");
    assert!(load(&missing).is_err());
}

#[test]
fn no_input_panics_and_every_error_has_a_position() {
    // Every prefix of a full file, and every single-byte corruption of its key characters.
    let text = ISSUE_EXAMPLE;
    let mut inputs: Vec<String> =
        (0..=text.len()).filter(|&i| text.is_char_boundary(i)).map(|i| text[..i].to_owned()).collect();
    for (i, c) in text.char_indices().filter(|(_, c)| matches!(c, '=' | '[' | ']' | '"' | ',' | '0'..='9')) {
        for replacement in ["", "x", "-", "9"] {
            inputs.push(format!("{}{replacement}{}", &text[..i], &text[i + c.len_utf8()..]));
        }
    }
    for input in inputs {
        if let Err(e) = parse(&input, Path::new("f.toml")) {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.message.is_empty());
        }
    }
}
