//! Model counterexamples replay in the simulator: bundled mutations the model finds at CI size
//! (n = 3, no Byzantine agent, 2 rounds: seconds), written as schedule files, run by the
//! simulator's scripted mode to the same invariant; the correct protocol is clean at the same
//! bounds; a broken schedule names its line and field; a schedule the simulator cannot follow
//! says where it diverged.

use std::path::{Path, PathBuf};
use std::process::Command;

use consensus_core::protocol::Mutation;
use sim::model::schedule::Schedule;
use sim::model::{check, ModelConfig, Setup, Stop, Votes};

fn small(mutation: Mutation, max_states: u64) -> Setup {
    let config = ModelConfig { mutation, max_states, ..ModelConfig::honest(3, 2, Votes::Fixed(vec![0, 0, 1])) };
    Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn mutations_the_model_finds_replay_to_the_same_invariant_in_the_simulator() {
    for (mutation, invariant) in [
        (Mutation::QuorumOneShort, "agreement"),
        (Mutation::QuorumTwoFPlusOne, "agreement"),
        (Mutation::LocalTimeoutFallback, "agreement"),
    ] {
        let setup = small(mutation, 50_000);
        let report = check(&setup);
        assert_eq!(report.stop, Stop::Violation, "{mutation:?}");
        let cx = report.counterexample.unwrap_or_else(|| panic!("{mutation:?}: not found"));
        assert_eq!(cx.violation.invariant, invariant, "{mutation:?}");
        let text = Schedule::of(&setup, &cx).to_text();
        let schedule = Schedule::parse(&text, Path::new("cx.toml")).unwrap_or_else(|e| panic!("{e}"));
        let out = sim::run::replay(&schedule).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.divergence, None, "{mutation:?}");
        assert_eq!(out.steps_done, schedule.steps.len(), "{mutation:?}: the violation is at the last step");
        let v = out.violation.unwrap_or_else(|| panic!("{mutation:?}: the simulator found nothing"));
        assert_eq!(v.invariant, invariant, "{mutation:?}: {}", v.detail);
        assert!(out.trace.iter().any(|e| e.kind == "violation"), "{mutation:?}: the trace ends with it");
    }
}

#[test]
fn the_correct_protocol_is_clean_at_the_same_bounds() {
    let report = check(&small(Mutation::None, 20_000));
    assert!(report.counterexample.is_none(), "{:?}", report.counterexample.map(|c| c.violation));
    assert_eq!(report.stop, Stop::MaxStates);
}

fn bftsim(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bftsim")).args(args).output().unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bftsim-it-model-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bftsim_model_writes_a_schedule_that_bftsim_reproduce_replays() {
    let dir = scratch();
    let out = dir.display().to_string();
    let (code, text) = bftsim(&[
        "model",
        "--agents",
        "3",
        "--byzantine",
        "0",
        "--rounds",
        "2",
        "--byzantine-mode",
        "silent",
        "--votes",
        "0,0,1",
        "--mutation",
        "quorum-one-short",
        "--quiet",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(1), "{text}");
    let file = dir.join("counterexample.toml");
    let path = file.display().to_string();
    assert!(text.contains(&format!("bftsim reproduce {path}")), "{text}");
    let (code, text) = bftsim(&["reproduce", &path]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("VIOLATION agreement") && text.contains("as the model found"), "{text}");
    let svg = std::fs::read_to_string(dir.join("counterexample.svg")).unwrap_or_default();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "the space-time diagram is written");

    // A broken field: the error names the file, the line of the step and the field.
    let schedule = std::fs::read_to_string(&file).unwrap_or_default();
    let broken = schedule.replacen("to = 1\n", "to = 9\n", 1);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, &broken).unwrap_or_else(|e| panic!("{e}"));
    let (code, text) = bftsim(&["reproduce", &bad.display().to_string()]);
    assert_ne!(code, Some(0), "{text}");
    // The line reported is the `[[step]]` header of the broken step: the last header above it.
    let lines: Vec<&str> = broken.lines().collect();
    let broken_at = lines.iter().position(|l| *l == "to = 9").unwrap_or_else(|| panic!("no broken line"));
    let header = lines[..broken_at].iter().rposition(|l| *l == "[[step]]").unwrap_or_else(|| panic!("no step")) + 1;
    let step = lines[..broken_at].iter().filter(|l| **l == "[[step]]").count();
    assert!(
        text.contains(&format!("bad.toml:{header}: step {step}: field `to`")),
        "line {header}, step {step}: {text}"
    );
    assert!(text.contains("agent 9"), "{text}");

    // A step removed: agent 0 never sends the precommit a later step delivers.
    let mut steps: Vec<&str> = schedule.split("\n[[step]]\n").collect();
    steps.remove(1);
    let skipped = dir.join("skipped.toml");
    std::fs::write(&skipped, steps.join("\n[[step]]\n")).unwrap_or_else(|e| panic!("{e}"));
    let (code, text) = bftsim(&["reproduce", &skipped.display().to_string()]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("REPLAY DIVERGED") && text.contains("never sent"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Byzantine send in a schedule reaches the honest agent exactly as scheduled: agent 3's vote,
/// injected to the round-0 proposer before agent 1's, makes a quorum of 3 with it, so the
/// proposer proposes after agent 1's vote; without the injection it does not.
#[test]
fn an_injected_byzantine_message_is_received_as_scheduled() {
    use consensus_core::protocol::messages::{Message, SignedVote};
    use consensus_core::sign::Signer;
    use consensus_core::AgentId;
    use sim::model::schedule::{Step, FORMAT};
    use sim::model::FirstProposer;

    let setup = Setup::new(ModelConfig {
        agents: 4,
        byzantine: 1,
        rounds: 1,
        votes: Votes::Fixed(vec![0, 0, 1, 0]),
        first_proposer: FirstProposer::Honest,
        ..ModelConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let signed = |a: u32| {
        let vote = setup.vote(AgentId(a), 0);
        let signature = setup.keys.agents[a as usize].sign(&consensus_core::wire::vote_signing_bytes(&vote));
        hex(consensus_core::wire::encode(&Message::Vote(SignedVote { vote, signature })))
    };
    let step = |kind: &str, from: u32, message: String| Step {
        kind: kind.into(),
        what: String::new(),
        to: Some(0),
        from: Some(from),
        message: Some(message),
        agent: None,
        timer: None,
        round: None,
        at_ms: None,
    };
    let schedule = |steps: Vec<Step>| Schedule {
        format: FORMAT.into(),
        agents: 4,
        byzantine: 1,
        rounds: 1,
        candidates: 2,
        first_proposer: "honest".into(),
        mutation: "none".into(),
        votes: vec![0, 0, 1, 0],
        invariant: "none".into(),
        detail: String::new(),
        steps,
    };
    let proposed = |s: &Schedule| {
        let out = sim::run::replay(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.divergence, None);
        assert!(out.violation.is_none(), "{:?}", out.violation);
        out.trace.iter().any(|e| e.kind == "send" && e.agent == Some(0) && e.detail.starts_with("proposal round 0"))
    };
    let injected = schedule(vec![step("inject", 3, signed(3)), step("deliver", 1, signed(1))]);
    assert!(proposed(&injected), "the Byzantine vote completed the proposer's quorum");
    assert!(!proposed(&schedule(vec![step("deliver", 1, signed(1))])), "two votes are not a quorum of 3");
    // An honest sender cannot inject, a Byzantine one cannot be delivered from the pool.
    let text = schedule(vec![step("inject", 1, signed(1))]);
    let e = Schedule::parse(&toml::to_string(&text).unwrap_or_default(), Path::new("x.toml")).err();
    assert!(e.is_some_and(|e| e.message.contains("field `from`")));
}
