//! Catch-up of an agent that missed more sessions than its peers keep in memory
//! (docs/protocol.md L72–L81): four agents behind `Archived` on simulated disks, a network
//! that delivers every message 1 ms after it is sent, and timers. Agent 3 is down while the
//! others decide 200 sessions with `keep_decided = 8`; when it comes back it learns every one of
//! them from the peers' archives and decides new sessions again. Beyond the archive's
//! retention the peers answer `Pruned` and the agent stays where it is (L81).

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::{Agent, Input, Message, Node, Output, ProtocolConfig, SessionSpec};
use consensus_core::registry::Registry;
use consensus_core::sign::{sim_committee, Keys, Signer, SimKeyring, SimSigner};
use consensus_core::{
    wire, AgentId, AgentSpecialization, AgentVote, CandidateId, EngineConfig, Ppm, SessionId, TimeMs,
};
use durable::{Archived, SimDisk};
use std::collections::{BTreeMap, BTreeSet};

const N: u32 = 4;
type Keyset = Keys<SimSigner, SimKeyring>;
type Host = Archived<Agent<SimSigner, SimKeyring>, SimDisk>;

/// The agents, the messages and timers in flight, and what each agent decided.
struct Net {
    keys: Keyset,
    agents: Vec<Host>,
    now: TimeMs,
    seq: u64,
    events: BTreeMap<(TimeMs, u64), (u32, Input)>,
    down: BTreeSet<u32>,
    decided: BTreeMap<u32, BTreeSet<u64>>,
    /// Peers that told each agent they no longer keep what it asked for.
    pruned: BTreeMap<u32, BTreeSet<AgentId>>,
}

impl Net {
    /// Four agents keeping 8 decided sessions in memory and `archive_keep` in their archive.
    fn new(seed: u64, archive_keep: usize) -> Net {
        let keys = sim_committee(seed, N);
        let engine = EngineConfig::default();
        let protocol = ProtocolConfig { keep_decided: 8, ..ProtocolConfig::default() };
        let agents = (0..N)
            .map(|i| {
                let registry = Registry::seed_committee(N, &engine);
                let agent =
                    Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, protocol);
                Archived::open(agent, SimDisk::new(), archive_keep).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let (events, down, decided, pruned) = Default::default();
        Net { keys, agents, now: 0, seq: 0, events, down, decided, pruned }
    }

    fn push(&mut self, at: TimeMs, to: u32, input: Input) {
        self.seq += 1;
        self.events.insert((at, self.seq), (to, input));
    }

    /// The client opens `session` at every agent now.
    fn open(&mut self, session: u64) {
        let candidates = vec![CandidateId(0), CandidateId(1)];
        let spec = SessionSpec { session: SessionId(session), query: "q".into(), candidates, opened_ms: self.now };
        let signature = self.keys.client.sign(&wire::spec_signing_bytes(&spec));
        for a in 0..N {
            let message = Message::Open(SignedSpec { spec: spec.clone(), signature });
            self.push(self.now, a, Input::Receive { from: AgentId::CLIENT, message });
        }
    }

    /// Handles every event up to `until` (a down agent loses what is sent to it, timers too).
    fn run(&mut self, until: TimeMs) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), (to, input)) = entry.remove_entry();
            self.now = at;
            if self.down.contains(&to) {
                continue;
            }
            if let Input::Receive { from, message: Message::Pruned { .. } } = &input {
                self.pruned.entry(to).or_default().insert(*from);
            }
            let mut out = Vec::new();
            self.agents[to as usize].handle(at, input, &mut out);
            self.route(to, out);
        }
        self.now = until;
    }

    fn route(&mut self, me: u32, out: Vec<Output>) {
        let (now, from) = (self.now, AgentId(me));
        for o in out {
            match o {
                Output::Broadcast(message) => {
                    for a in (0..N).filter(|a| *a != me) {
                        self.push(now + 1, a, Input::Receive { from, message: message.clone() });
                    }
                }
                Output::Send { to, message } if to.0 < N => self.push(now + 1, to.0, Input::Receive { from, message }),
                Output::Schedule { timer, at_ms } => self.push(at_ms, me, Input::Timeout(timer)),
                Output::Evaluate(spec) => self.push(now + 1, me, Input::LocalVote(vote(from, spec.session))),
                Output::Decide(record) => {
                    self.decided.entry(me).or_default().insert(record.session.0);
                }
                _ => {}
            }
        }
    }

    fn applied(&self, agent: u32) -> u64 {
        self.agents[agent as usize].inner().applied_sessions()
    }

    fn decided(&self, agent: u32, sessions: std::ops::Range<u64>) -> bool {
        let d = self.decided.get(&agent);
        sessions.into_iter().all(|s| d.is_some_and(|d| d.contains(&s)))
    }

    /// Sessions `0..10` with everyone, then `10..210` with agent 3 down (one every 10 ms).
    fn decide_while_3_is_down(&mut self) {
        for s in 0..10 {
            self.open(s);
            self.run(self.now + 10);
        }
        self.run(self.now + 1_000);
        assert!(self.decided(3, 0..10), "agent 3 took part first");
        self.down.insert(3);
        for s in 10..210 {
            self.open(s);
            self.run(self.now + 10);
        }
        self.run(self.now + 20_000);
        for a in 0..3 {
            let missing: Vec<u64> = (0..210).filter(|s| !self.decided(a, *s..*s + 1)).collect();
            assert_eq!(self.applied(a), 210, "agent {a}: {missing:?}");
        }
        assert_eq!(self.applied(3), 10);
    }

    /// Agent 3 restarts (its timers were lost): `Recover`.
    fn restart_3(&mut self) {
        self.down.remove(&3);
        self.push(self.now, 3, Input::Recover);
    }
}

fn vote(agent: AgentId, session: SessionId) -> AgentVote {
    let spec = AgentSpecialization::cycled(agent.0 as usize);
    let (score, confidence) = (Ppm::saturating(900_000), Ppm::saturating(950_000));
    let mut v = AgentVote::accept(agent, spec, session, CandidateId(0), score, confidence);
    v.scores = [(CandidateId(0), score), (CandidateId(1), Ppm::saturating(200_000))].into_iter().collect();
    v
}

/// Before the archive (L78) agent 3, 200 sessions behind peers that keep 8, was never sent the
/// certificates of sessions 10..202 and rejected every later session as too far ahead. Now it
/// learns all 200 within half a simulated second of its restart (130 ms) (the chase asks for the next batch
/// as soon as one is applied, L80), then decides new sessions with the others.
#[test]
fn an_agent_200_sessions_behind_peers_keeping_8_catches_up_from_their_archives() {
    let mut net = Net::new(71, 1_000);
    net.decide_while_3_is_down();
    let restarted = net.now;
    net.restart_3();
    let mut caught_up = None;
    while net.now < restarted + 10_000 && caught_up.is_none() {
        net.run(net.now + 10);
        caught_up = (net.applied(3) == 210).then_some(net.now - restarted);
    }
    let took = caught_up.unwrap_or_else(|| panic!("agent 3 stopped at {} of 210", net.applied(3)));
    assert!(net.decided(3, 10..210), "agent 3 learned the decision of every session it missed");
    eprintln!("agent 3 caught up 200 sessions in {took} ms (simulated)");
    assert!(took <= 500, "caught up in {took} ms of simulated time");
    let served: u64 = (0..3).map(|a| net.agents[a].stats().served.load(std::sync::atomic::Ordering::Relaxed)).sum();
    assert!(served >= 190, "certificates came from the archives ({served})");
    for s in 210..215 {
        net.open(s);
        net.run(net.now + 10);
    }
    net.run(net.now + 2_000);
    assert!(net.decided(3, 210..215), "agent 3 decides new sessions again");
    assert!((0..4).all(|a| net.applied(a) == 215));
}

/// L81: peers whose archive keeps only the last 16 decisions answer `Pruned`; agent 3 hears it
/// from every peer (f + 1 suffice for the node to report it) and applies nothing it cannot
/// check: it stays at 10 rather than skip sessions.
#[test]
fn beyond_the_archive_peers_answer_pruned_and_the_agent_applies_nothing() {
    let mut net = Net::new(72, 16);
    net.decide_while_3_is_down();
    net.restart_3();
    net.run(net.now + 5_000);
    assert_eq!(net.applied(3), 10);
    let told = net.pruned.get(&3).map_or(0, BTreeSet::len);
    assert_eq!(told, 3, "every peer said it no longer keeps session 10");
    let pruned: u64 = (0..3).map(|a| net.agents[a].stats().pruned.load(std::sync::atomic::Ordering::Relaxed)).sum();
    assert!(pruned >= 3);
}
