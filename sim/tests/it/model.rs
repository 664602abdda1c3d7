//! `bftsim model` on a reduced instance (seconds), so the checker cannot rot: two honest agents,
//! one round, every vote assignment, explored completely.

use consensus_core::protocol::Mutation;
use sim::model::search::sometimes;
use sim::model::{check, ByzantineMode, Links, ModelConfig, Setup, Stop, Votes};

fn reduced(jobs: usize) -> Setup {
    let config = ModelConfig { jobs, ..ModelConfig::honest(2, 1, Votes::Enumerate) };
    Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_reduced_instance_is_explored_completely_without_a_violation() {
    let report = check(&reduced(1));
    assert_eq!(report.stop, Stop::Complete);
    assert!(report.counterexample.is_none(), "{:?}", report.counterexample.map(|c| c.violation));
    assert_eq!(report.initial, 4, "two candidates for two agents");
    assert!(report.states > 1_000 && report.transitions >= report.states - report.initial);
    assert_eq!(report.sometimes.get(sometimes::DECIDE_ROUND_0), Some(&true), "a decision is reachable");
    assert!(report.terminal_decided > 0, "some maximal paths end with every agent decided");
    assert!(report.terminal_undecided > 0, "one round without its successor: some paths cannot decide");
}

#[test]
fn the_search_is_the_same_on_two_threads() {
    let (one, two) = (check(&reduced(1)), check(&reduced(2)));
    assert_eq!((one.states, one.transitions, one.depth), (two.states, two.transitions, two.depth));
}

fn with(config: ModelConfig) -> Setup {
    Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_block_reduction_keeps_every_end_state_and_sometimes_property() {
    for links in [Links::AtLeastOnce, Links::ExactlyOnce] {
        let reduced_search = check(&with(ModelConfig { links, ..reduced(1).config }));
        let full = check(&with(ModelConfig { reduce: false, links, ..reduced(1).config }));
        assert_eq!((reduced_search.stop, full.stop), (Stop::Complete, Stop::Complete), "{links:?}");
        assert_eq!(reduced_search.end_states, full.end_states, "{links:?}: the same decisions at the end");
        assert!(reduced_search.end_states.len() > 1, "{links:?}: {:?}", reduced_search.end_states);
        assert_eq!(reduced_search.sometimes, full.sometimes, "{links:?}");
        assert_eq!(reduced_search.coverage.reached().count(), full.coverage.reached().count(), "{links:?}");
        assert!(reduced_search.states < full.states, "{links:?}: silent steps are not stored");
    }
}

#[test]
fn the_lazy_reduction_keeps_what_the_block_reduction_and_the_full_search_find() {
    for links in [Links::AtLeastOnce, Links::ExactlyOnce] {
        let base = ModelConfig { links, ..reduced(1).config };
        let lazy = check(&with(base.clone()));
        let block = check(&with(ModelConfig { lazy: false, ..base.clone() }));
        let full = check(&with(ModelConfig { reduce: false, ..base }));
        assert_eq!(full.stop, Stop::Complete, "{links:?}");
        for (name, r) in [("lazy", &lazy), ("block", &block)] {
            assert_eq!(r.stop, Stop::Complete, "{links:?} {name}");
            assert_eq!(r.end_states, full.end_states, "{links:?} {name}: the same decisions at the end");
            assert_eq!(r.sometimes, full.sometimes, "{links:?} {name}");
            let points = |r: &sim::model::search::ModelReport| r.coverage.reached().collect::<Vec<_>>();
            assert_eq!(points(r), points(&full), "{links:?} {name}: the same coverage points");
        }
        assert!(lazy.lazy_pruned > 0 && block.lazy_pruned == 0 && full.lazy_pruned == 0, "{links:?}");
        assert!(lazy.transitions < block.transitions, "{links:?}: {} and {}", lazy.transitions, block.transitions);
    }
}

/// n = 3, no Byzantine agent, 2 rounds, votes 0,0,1 (the instance of `model_replay.rs`).
fn three(mutation: Mutation, config: ModelConfig) -> Setup {
    with(ModelConfig {
        agents: 3,
        byzantine: 0,
        rounds: 2,
        votes: Votes::Fixed(vec![0, 0, 1]),
        byzantine_mode: ByzantineMode::Silent,
        mutation,
        max_states: 200_000,
        ..config
    })
}

#[test]
fn the_lazy_reduction_finds_the_mutations_the_full_search_finds() {
    for mutation in [Mutation::QuorumOneShort, Mutation::QuorumTwoFPlusOne, Mutation::LocalTimeoutFallback] {
        let invariant = |config: ModelConfig| {
            let r = check(&three(mutation, config));
            assert_eq!(r.stop, Stop::Violation, "{mutation:?}");
            r.counterexample.map(|c| (c.violation.invariant, c.path.len()))
        };
        let lazy = invariant(ModelConfig::default());
        let block = invariant(ModelConfig { lazy: false, ..ModelConfig::default() });
        let full = invariant(ModelConfig { reduce: false, ..ModelConfig::default() });
        let name = |r: &Option<(String, usize)>| r.as_ref().map(|(i, _)| i.clone());
        assert_eq!(name(&lazy), name(&full), "{mutation:?}");
        assert_eq!(name(&block), name(&full), "{mutation:?}");
        assert_eq!(name(&full).as_deref(), Some("agreement"), "{mutation:?}");
    }
}

#[test]
fn at_least_once_links_keep_the_end_states_and_sometimes_properties_of_exactly_once_links() {
    let once = check(&with(ModelConfig { links: Links::ExactlyOnce, ..reduced(1).config }));
    let many = check(&with(ModelConfig { links: Links::AtLeastOnce, ..reduced(1).config }));
    assert_eq!((once.stop, many.stop), (Stop::Complete, Stop::Complete));
    assert_eq!(once.end_states, many.end_states, "{} and {} states", once.states, many.states);
    assert_eq!(once.sometimes, many.sometimes);
    assert!(many.self_loops > 0, "a message delivered again changes nothing");
}

#[test]
fn a_vacuous_model_check_exits_1_unless_allowed() {
    let out = std::env::temp_dir().join(format!("bftsim-it-model-{}", std::process::id()));
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bftsim"))
            .args(["model", "--agents", "2", "--byzantine", "0", "--rounds", "1", "--byzantine-mode", "silent"])
            .args(["--votes", "0,0", "--quiet", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let strict = run(&[]);
    let text = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{text}");
    assert!(text.contains("VACUOUS CHECK") && text.contains("relock-in-round-1"), "{text}");
    assert!(text.contains("sometimes decide-in-round-0: reached"), "{text}");
    let allowed = run(&["--allow-vacuous"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", String::from_utf8_lossy(&allowed.stdout));
    let _ = std::fs::remove_dir_all(&out);
}
