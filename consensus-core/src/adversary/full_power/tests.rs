//! The full-power agent in a small world: four honest agents and one full-power agent exchange
//! encoded frames through a deterministic queue (every frame delivered in order, timers fired
//! when nothing is in flight), the client's `Open`s first. The tests check what it sends
//! (each family its messages, only its own key's signatures, deterministic for a seed), what it
//! keeps (the memory bounds), and that the honest agents still agree and decide.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::memory::{MAX_COMMITS, MAX_OWN_VALUES, MAX_PROPOSALS, MAX_ROUND_VOTES, MAX_SESSIONS, MAX_VOTES};
use super::*;
use crate::adversary::{Byzantine, Strategy};
use crate::protocol::messages::{SessionSpec, SignedSpec};
use crate::protocol::{DecisionRecord, ProposalMode, ProtocolConfig, ValueId, VoteKind};
use crate::sign::{sim_committee, Keys, SimKeyring, SimSigner};
use crate::types::{AgentSpecialization, AgentVote, CandidateId};
use crate::wire;

const N: u32 = 5;
/// The full-power agent: the proposer of round 0 of every session that is a multiple of 5.
const BYZ: AgentId = AgentId(0);
type Keyset = Keys<SimSigner, SimKeyring>;

/// Sessions overlap freely: every one is validated against the initial registry.
fn protocol() -> ProtocolConfig {
    ProtocolConfig { pipeline: 64, ..ProtocolConfig::default() }
}

fn agent(keys: &Keyset, i: u32) -> Agent<SimSigner, SimKeyring> {
    let engine = EngineConfig::default();
    let registry = Registry::seed_committee(N, &engine);
    Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, protocol())
}

fn full_power(keys: &Keyset, seed: u64, config: FullPowerConfig) -> Byzantine<SimSigner, SimKeyring> {
    let peers = (0..N).map(AgentId).collect();
    let signer = keys.agents[BYZ.0 as usize].clone();
    Byzantine::new(agent(keys, BYZ.0), signer, Strategy::FullPower, peers, EngineConfig::default(), seed, 7)
        .with_full_power(config)
}

fn config(families: &[Family], rate: u64) -> FullPowerConfig {
    FullPowerConfig { rate: Ppm::saturating(rate), actions_per_input: 2, families: families.to_vec() }
}

/// An honest vote on `spec`: candidate 0 best, except for agent 3 (a split keeps rounds going).
fn vote_on(spec: &SessionSpec, agent: AgentId) -> AgentVote {
    let best = if agent.0 == 3 { 1 } else { 0 };
    let scores: BTreeMap<CandidateId, Ppm> =
        spec.candidates.iter().map(|c| (*c, Ppm::saturating(if c.0 == best { 900_000 } else { 400_000 }))).collect();
    let mut v = AgentVote::accept(
        agent,
        AgentSpecialization::cycled(agent.0 as usize),
        spec.session,
        CandidateId(best),
        Ppm::saturating(900_000),
        Ppm::saturating(950_000),
    );
    v.scores = scores;
    v
}

/// The world: five nodes, frames in flight, timers.
struct World {
    nodes: Vec<Box<dyn Node>>,
    keyring: SimKeyring,
    queue: VecDeque<(AgentId, AgentId, Vec<u8>)>,
    timers: BTreeMap<(TimeMs, u64), (AgentId, Input)>,
    now: TimeMs,
    seq: u64,
    /// Everything the full-power agent output (and when), and every message it received.
    byz_out: Vec<Output>,
    byz_times: Vec<TimeMs>,
    byz_in: Vec<Message>,
    decisions: BTreeMap<(AgentId, SessionId), DecisionRecord>,
    malformed_received: u64,
    /// Inputs the honest agents refused because a session's buffer was full.
    buffer_full: u64,
}

impl World {
    fn new(keys: &Keyset, byz: Byzantine<SimSigner, SimKeyring>, sessions: u64) -> World {
        let mut nodes: Vec<Box<dyn Node>> = vec![Box::new(byz)];
        nodes.extend((1..N).map(|i| Box::new(agent(keys, i)) as Box<dyn Node>));
        let mut w = World {
            nodes,
            keyring: keys.keyring.clone(),
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            now: 0,
            seq: 0,
            byz_out: Vec::new(),
            byz_times: Vec::new(),
            byz_in: Vec::new(),
            decisions: BTreeMap::new(),
            malformed_received: 0,
            buffer_full: 0,
        };
        for s in 0..sessions {
            let spec = SessionSpec {
                session: SessionId(s),
                query: format!("q{s}"),
                candidates: vec![CandidateId(0), CandidateId(1), CandidateId(2)],
                opened_ms: 0,
            };
            let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
            let frame = wire::encode(&Message::Open(SignedSpec { spec, signature }));
            for a in 0..N {
                w.queue.push_back((AgentId::CLIENT, AgentId(a), frame.clone()));
            }
        }
        w
    }

    fn input(&mut self, to: AgentId, input: Input) {
        if to == BYZ {
            if let Input::Receive { message, .. } = &input {
                self.byz_in.push(message.clone());
            }
        }
        let Some(node) = self.nodes.get_mut(to.0 as usize) else { return };
        let mut out = Vec::new();
        node.handle(self.now, input, &mut out);
        for o in out {
            if to == BYZ {
                self.byz_out.push(o.clone());
                self.byz_times.push(self.now);
            }
            self.perform(to, o);
        }
    }

    fn perform(&mut self, from: AgentId, output: Output) {
        match output {
            Output::Broadcast(m) => {
                let frame = wire::encode(&m);
                for a in (0..N).map(AgentId).filter(|a| *a != from) {
                    self.queue.push_back((from, a, frame.clone()));
                }
            }
            Output::Send { to, message } => self.queue.push_back((from, to, wire::encode(&message))),
            Output::SendRaw { to, bytes } => self.queue.push_back((from, to, bytes)),
            Output::Schedule { timer, at_ms } => {
                self.timers.insert((at_ms.max(self.now), self.seq), (from, Input::Timeout(timer)));
                self.seq += 1;
            }
            Output::Evaluate(spec) => {
                let vote = vote_on(&spec, from);
                self.timers.insert((self.now + 5, self.seq), (from, Input::LocalVote(vote)));
                self.seq += 1;
            }
            Output::Decide(record) => {
                self.decisions.insert((from, record.session), *record);
            }
            // No archive in this little world: sessions stay within keep_decided here.
            Output::Reject { reason: crate::protocol::Rejection::BufferFull, .. } => self.buffer_full += 1,
            Output::Evidence(_) | Output::Reject { .. } | Output::ServeArchived { .. } => {}
        }
    }

    /// Runs until `until_ms` of simulated time (or nothing is left to do).
    fn run(&mut self, until_ms: TimeMs) {
        loop {
            if let Some((from, to, frame)) = self.queue.pop_front() {
                if to.0 >= N {
                    continue; // the client only listens
                }
                let input = match wire::decode(&frame) {
                    Ok(message) => Input::Receive { from, message },
                    Err(_) => {
                        self.malformed_received += 1;
                        Input::Malformed { from }
                    }
                };
                self.input(to, input);
                continue;
            }
            let Some(((at, _), (to, input))) = self.timers.pop_first() else { return };
            if at > until_ms {
                return;
            }
            self.now = at;
            self.input(to, input);
        }
    }

    /// The honest agents' decisions agree per session; returns the sessions every one decided.
    fn honest_agreement(&self) -> BTreeSet<SessionId> {
        let mut by_session: BTreeMap<SessionId, Vec<(AgentId, Option<ValueId>)>> = BTreeMap::new();
        for ((a, s), d) in &self.decisions {
            if *a != BYZ {
                by_session.entry(*s).or_default().push((*a, d.value));
            }
        }
        for (s, ds) in &by_session {
            assert!(ds.iter().all(|(_, v)| *v == ds[0].1), "session {s}: honest agents disagree: {ds:?}");
        }
        by_session.into_iter().filter(|(_, ds)| ds.len() == N as usize - 1).map(|(s, _)| s).collect()
    }

    fn byz_messages(&self) -> Vec<&Message> {
        self.byz_out
            .iter()
            .filter_map(|o| match o {
                Output::Broadcast(m) | Output::Send { message: m, .. } => Some(m),
                _ => None,
            })
            .collect()
    }
}

fn world(seed: u64, config: FullPowerConfig, sessions: u64, until_ms: TimeMs) -> World {
    let keys = sim_committee(seed, N);
    let byz = full_power(&keys, seed, config);
    let mut w = World::new(&keys, byz, sessions);
    w.run(until_ms);
    w
}

#[test]
fn the_same_seed_gives_the_same_messages_and_another_seed_others() {
    let all = config(&Family::ALL, 300_000);
    let (a, b) = (world(3, all.clone(), 3, 3_000), world(3, all.clone(), 3, 3_000));
    assert_eq!(a.byz_out, b.byz_out);
    assert!(a.byz_out.len() > 100, "{} outputs", a.byz_out.len());
    let keys = sim_committee(3, N);
    let mut c = World::new(&keys, full_power(&keys, 4, all), 3);
    c.run(3_000);
    assert_ne!(a.byz_out, c.byz_out);
}

/// With only `family` on, at rate 1, the agent sends what that family sends.
#[test]
fn each_family_sends_its_messages() {
    let count = |w: &World, f: &dyn Fn(&Message) -> bool| w.byz_messages().into_iter().filter(|m| f(m)).count();
    let foreign_proposal = |m: &Message| matches!(m, Message::Proposal(p) if p.proposer == BYZ && p.round > 0);
    let proposals = world(11, config(&[Family::Proposals], 1_000_000), 2, 2_000);
    let control = world(11, config(&[], 0), 2, 2_000);
    assert!(count(&proposals, &foreign_proposal) > 20, "proposals in rounds it reaches only by its own hand");
    assert!(count(&proposals, &|m| matches!(m, Message::Proposal(p) if p.valid_round.is_some())) > 0, "re-proposals");
    let mixed_polka =
        |m: &Message| matches!(m, Message::Proposal(p) if p.polka.iter().any(|v| v.session != p.value.session));
    let many_sessions = world(11, config(&[Family::Proposals], 1_000_000), 4, 4_000);
    assert!(count(&many_sessions, &mixed_polka) > 0, "polka certificates with prevotes of other sessions");
    let not_below = |m: &Message| matches!(m, Message::Proposal(p) if p.valid_round.is_some_and(|vr| vr >= p.round));
    assert!(count(&many_sessions, &not_below) > 0, "valid rounds not below the proposal's round");
    let own_round_votes = |m: &Message| matches!(m, Message::RoundVote(v) if v.agent == BYZ);
    let round_votes = world(12, config(&[Family::RoundVotes], 1_000_000), 2, 2_000);
    assert!(count(&round_votes, &own_round_votes) > 3 * count(&control, &own_round_votes));
    let votes = world(13, config(&[Family::Votes], 1_000_000), 2, 2_000);
    let own_votes = |m: &Message| matches!(m, Message::Vote(v) if v.vote.agent == BYZ);
    assert!(count(&votes, &own_votes) > 3 * count(&control, &own_votes));
    let certificates = world(14, config(&[Family::Certificates], 1_000_000), 2, 2_000);
    let commits = |m: &Message| matches!(m, Message::Commit(_));
    assert!(count(&certificates, &commits) > 3 * count(&control, &commits).max(1));
    let sync = world(15, config(&[Family::Sync], 1_000_000), 2, 2_000);
    assert!(count(&sync, &|m| matches!(m, Message::Open(_))) > 0);
    assert!(
        count(&sync, &|m| matches!(m, Message::Sync { .. }))
            > 3 * count(&control, &|m| matches!(m, Message::Sync { .. })).max(1)
    );
    let malformed = world(16, config(&[Family::Malformed], 1_000_000), 2, 2_000);
    assert!(malformed.byz_out.iter().filter(|o| matches!(o, Output::SendRaw { .. })).count() > 20);
    assert!(malformed.malformed_received > 20, "most raw frames do not decode");
    assert_eq!(control.malformed_received, 0);
    let deviate = world(17, config(&[Family::Deviate], 1_000_000), 2, 2_000);
    let own = |w: &World| count(w, &|m| own_round_votes(m) || own_votes(m));
    assert_ne!(own(&deviate), own(&control), "its own messages are dropped, delayed, redirected or replaced");
    assert!(deviate
        .byz_out
        .iter()
        .any(|o| matches!(o, Output::Schedule { timer, .. } if timer.kind == TimerKind::Adversary)));
}

/// Every valid signature of another agent that it sends is a copy of something it received:
/// it never forges one.
#[test]
fn it_signs_with_its_own_key_only() {
    let w = world(21, config(&Family::ALL, 1_000_000), 3, 3_000);
    let mut received_votes = BTreeSet::new();
    let mut received_round_votes = BTreeSet::new();
    let mut received_proposals = BTreeSet::new();
    let mut note = |m: &Message| match m {
        Message::Vote(v) => {
            received_votes.insert(v.clone());
        }
        Message::RoundVote(v) => {
            received_round_votes.insert(v.clone());
        }
        Message::Proposal(p) => {
            received_proposals.insert(p.signature);
            received_round_votes.extend(p.polka.iter().cloned());
            received_votes.extend(p.value.votes.iter().cloned());
        }
        Message::Commit(c) => {
            received_proposals.insert(c.proposal.signature);
            received_round_votes.extend(c.precommits.iter().cloned());
            received_round_votes.extend(c.proposal.polka.iter().cloned());
            received_votes.extend(c.proposal.value.votes.iter().cloned());
        }
        _ => {}
    };
    w.byz_in.iter().for_each(&mut note);
    let k = &w.keyring;
    let (mut checked, mut own) = (0, 0);
    let mut check_vote = |v: &crate::protocol::SignedVote| {
        if k.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature) {
            checked += 1;
            own += usize::from(v.vote.agent == BYZ);
            assert!(v.vote.agent == BYZ || received_votes.contains(v), "a vote of {} it never received", v.vote.agent);
        }
    };
    let verifies_round_vote = |v: &crate::protocol::RoundVote| {
        k.verify(v.agent, &wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value), &v.signature)
    };
    let mut round_votes = Vec::new();
    for m in w.byz_messages() {
        match m {
            Message::Vote(v) => check_vote(v),
            Message::RoundVote(v) => round_votes.push(v.clone()),
            Message::Proposal(p) => {
                p.value.votes.iter().for_each(&mut check_vote);
                round_votes.extend(p.polka.iter().cloned());
                let bytes = wire::proposal_signing_bytes(&p.value, p.round, p.valid_round);
                if k.verify(p.proposer, &bytes, &p.signature) && p.proposer != BYZ {
                    assert!(
                        received_proposals.contains(&p.signature),
                        "a proposal of {} it never received",
                        p.proposer
                    );
                }
            }
            Message::Commit(c) => {
                c.proposal.value.votes.iter().for_each(&mut check_vote);
                round_votes.extend(c.precommits.iter().cloned());
            }
            _ => {}
        }
    }
    for v in round_votes.iter().filter(|v| verifies_round_vote(v)) {
        assert!(v.agent == BYZ || received_round_votes.contains(v), "a round vote of {} it never received", v.agent);
    }
    assert!(checked > 50 && own > 10, "{checked} valid votes checked, {own} its own");
}

/// Everything it keeps stays within its bounds, whatever it is fed.
#[test]
fn memory_stays_within_its_bounds() {
    let keys = sim_committee(31, N);
    let mut byz = full_power(&keys, 31, config(&Family::ALL, 1_000_000));
    let mut w = World::new(&keys, full_power(&keys, 31, config(&Family::ALL, 1_000_000)), 40);
    w.run(6_000);
    // Replay everything the honest world sent it, over and over, into a second agent at
    // growing times, with round votes of many rounds on top.
    let mut out = Vec::new();
    for (i, m) in w.byz_in.iter().enumerate() {
        let now = i as TimeMs;
        byz.handle(now, Input::Receive { from: AgentId(1), message: m.clone() }, &mut out);
        if let Message::RoundVote(v) = m {
            for r in 0..40 {
                let mut v = v.clone();
                v.round = v.round.saturating_add(r * 7);
                byz.handle(now, Input::Receive { from: v.agent, message: Message::RoundVote(v) }, &mut out);
            }
        }
        out.clear();
    }
    let bounds = |u: MemoryUse| {
        assert!(u.sessions <= MAX_SESSIONS && u.votes <= MAX_VOTES && u.proposals <= MAX_PROPOSALS, "{u:?}");
        assert!(
            u.round_votes <= MAX_ROUND_VOTES && u.commits <= MAX_COMMITS && u.own_values <= MAX_OWN_VALUES,
            "{u:?}"
        );
        assert!(u.streams <= MAX_STREAMS && u.held <= MAX_HELD && u.budgets <= MAX_BUDGETS, "{u:?}");
    };
    let used = byz.full_power_memory().unwrap_or_default();
    bounds(used.clone());
    assert_eq!(used.sessions, MAX_SESSIONS, "40 sessions seen, the last 16 kept");
    assert_eq!(used.round_votes, MAX_ROUND_VOTES, "{used:?}");
}

/// The honest agents keep agreement and decide every session, with the full-power agent acting
/// at every input (rate 1) in every family.
#[test]
fn honest_agents_agree_and_decide_under_it() {
    for seed in 40..44 {
        let w = world(seed, config(&Family::ALL, 1_000_000), 4, 20_000);
        let decided = w.honest_agreement();
        assert_eq!(decided.len(), 4, "seed {seed}: every honest agent decides every session: {decided:?}");
    }
    let w = world(45, FullPowerConfig::default(), 6, 20_000);
    assert_eq!(w.honest_agreement().len(), 6);
}

/// Two full-power agents answer each other's messages at every input: their traffic stays
/// within [`MAX_ACTIONS_PER_INTERVAL`] actions per retransmit interval (each at most two
/// messages to every peer) on top of the inner agent's own.
#[test]
fn two_full_power_agents_do_not_flood_each_other() {
    let keys = sim_committee(61, N);
    let mut w = World::new(&keys, full_power(&keys, 61, config(&Family::ALL, 1_000_000)), 3);
    let peers = (0..N).map(AgentId).collect();
    let second = Byzantine::new(
        agent(&keys, 1),
        keys.agents[1].clone(),
        Strategy::FullPower,
        peers,
        EngineConfig::default(),
        62,
        7,
    )
    .with_full_power(config(&Family::ALL, 1_000_000));
    w.nodes[1] = Box::new(second);
    w.run(5_000);
    let mut per_interval: BTreeMap<TimeMs, usize> = BTreeMap::new();
    for (o, at) in w.byz_out.iter().zip(&w.byz_times) {
        let frames = match o {
            Output::Broadcast(_) => N as usize - 1,
            Output::Send { .. } | Output::SendRaw { .. } => 1,
            _ => 0,
        };
        *per_interval.entry(at / 100).or_default() += frames;
    }
    let most = per_interval.values().copied().max().unwrap_or(0);
    let bound = 2 * MAX_ACTIONS_PER_INTERVAL as usize * 2 * (N as usize - 1) + 200;
    assert!(most <= bound, "{most} frames in one interval (bound {bound})");
    assert!(w.now >= 4_900, "the run got to its end: {}", w.now);
}

/// The knobs: `families = []` or `rate = 0` is the honest agent itself.
#[test]
fn without_families_or_rate_it_is_the_honest_agent() {
    let keys = sim_committee(51, N);
    let mut honest = World::new(&keys, full_power(&keys, 51, config(&[], 1_000_000)), 2);
    honest.run(2_000);
    let mut zero = World::new(&keys, full_power(&keys, 51, config(&Family::ALL, 0)), 2);
    zero.run(2_000);
    assert_eq!(honest.byz_out, zero.byz_out);
    let mut plain = World::new(&keys, full_power(&keys, 51, config(&[], 0)), 2);
    // The same world with the plain agent in its place.
    plain.nodes[0] = Box::new(agent(&keys, 0));
    plain.byz_out.clear();
    plain.run(2_000);
    assert_eq!(honest.byz_out, plain.byz_out);
}

#[test]
fn malformed_frames_never_decode_as_what_they_were() {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let message = Message::Sync { next: SessionId(3) };
    let frame = wire::encode(&message);
    let mut failed = 0;
    for _ in 0..500 {
        let bytes = malformed::corrupt(&mut rng, frame.clone());
        match wire::decode(&bytes) {
            Ok(m) => assert_ne!(m, message, "a corruption that changed nothing: {bytes:?}"),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 450, "{failed} of 500 fail to decode");
}

/// The flood family acts once per run: [`flood::FLOOD`] copies of one own nil prevote, to one
/// peer, for a session past the pipeline. The peer buffers what its bound allows and refuses the
/// rest (`reject-buffer-full`), and the honest agents still agree and decide.
#[test]
fn a_flood_passes_one_peers_buffer_bound_once() {
    let w = world(41, config(&[Family::Flood], 1_000_000), 2, 3_000);
    let flood: Vec<(AgentId, &Message)> = w
        .byz_out
        .iter()
        .filter_map(|o| match o {
            Output::Send { to, message: m @ Message::RoundVote(v) } if v.session.0 >= protocol().pipeline => {
                Some((*to, m))
            }
            _ => None,
        })
        .collect();
    assert_eq!(flood.len(), flood::FLOOD, "one flood, and only one, in the run");
    assert!(flood.iter().all(|(to, m)| *to == flood[0].0 && *m == flood[0].1), "copies of one message to one peer");
    let Message::RoundVote(v) = flood[0].1 else { unreachable!("filtered above") };
    assert_eq!((v.agent, v.kind, v.round, v.value), (BYZ, VoteKind::Prevote, 0, None));
    const { assert!(flood::FLOOD > crate::protocol::MAX_BUFFERED_PER_SESSION) };
    assert!(w.buffer_full >= (flood::FLOOD - crate::protocol::MAX_BUFFERED_PER_SESSION) as u64, "{}", w.buffer_full);
    assert_eq!(w.honest_agreement().len(), 2, "both sessions decided by every honest agent");
}

/// What the honest world sent the full-power agent: every signature it may copy.
struct Received {
    specs: Vec<SignedSpec>,
    votes: Vec<crate::protocol::SignedVote>,
    round_votes: Vec<crate::protocol::RoundVote>,
    proposals: Vec<crate::protocol::Proposal>,
}

fn received(w: &World) -> Received {
    let mut r = Received { specs: Vec::new(), votes: Vec::new(), round_votes: Vec::new(), proposals: Vec::new() };
    for m in &w.byz_in {
        match m {
            Message::Open(s) => r.specs.push(s.clone()),
            Message::Vote(v) => r.votes.push(v.clone()),
            Message::RoundVote(v) => r.round_votes.push(v.clone()),
            Message::Proposal(p) => {
                r.specs.push(p.value.spec.clone());
                r.votes.extend(p.value.votes.iter().cloned());
                r.round_votes.extend(p.polka.iter().cloned());
                r.proposals.push((**p).clone());
            }
            _ => {}
        }
    }
    r
}

/// The `replay` family reuses signatures it received on content they do not sign (specs,
/// votes, round votes, proposals, polka certificates) and counts voters twice; with correct
/// code none of it verifies and the honest agents still agree and decide.
#[test]
fn replay_reuses_seen_signatures_on_other_content() {
    let w = world(71, config(&[Family::Replay], 1_000_000), 4, 20_000);
    let r = received(&w);
    let k = &w.keyring;
    let committee = Committee::of(&Registry::seed_committee(N, &EngineConfig::default()), Mutation::None);
    let (mut specs, mut votes, mut duplicated, mut round_votes, mut proposals, mut polkas, mut opens) =
        (0, 0, 0, 0, 0, 0, 0);
    let replayed_spec = |s: &SignedSpec, session: SessionId| {
        let client = k.verify(AgentId::CLIENT, &wire::spec_signing_bytes(&s.spec), &s.signature);
        let seen = r.specs.iter().any(|x| x.signature == s.signature);
        seen && !(client && s.spec.session == session)
    };
    let recombined_round_vote = |v: &crate::protocol::RoundVote| {
        let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
        v.agent != BYZ
            && !k.verify(v.agent, &bytes, &v.signature)
            && r.round_votes.iter().any(|x| x.signature == v.signature)
    };
    for m in w.byz_messages() {
        match m {
            Message::Open(s) => {
                opens += usize::from(r.specs.iter().all(|x| x != s) && replayed_spec(s, s.spec.session))
            }
            Message::RoundVote(v) => round_votes += usize::from(recombined_round_vote(v)),
            Message::Proposal(p) => {
                specs += usize::from(replayed_spec(&p.value.spec, p.value.session));
                let recombined = p.value.votes.iter().any(|v| {
                    !k.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature)
                        && r.votes.iter().any(|x| x.signature == v.signature && x.vote != v.vote)
                });
                votes += usize::from(recombined);
                let distinct: BTreeSet<AgentId> = p.value.votes.iter().map(|v| v.vote.agent).collect();
                duplicated +=
                    usize::from(p.value.votes.len() >= committee.vote_q && distinct.len() < p.value.votes.len());
                let bytes = wire::proposal_signing_bytes(&p.value, p.round, p.valid_round);
                let foreign = p.proposer != BYZ && !k.verify(p.proposer, &bytes, &p.signature);
                proposals += usize::from(foreign && r.proposals.iter().any(|x| x.signature == p.signature));
                polkas += usize::from(p.polka.iter().any(&recombined_round_vote));
            }
            _ => {}
        }
    }
    let counts = [specs, votes, duplicated, round_votes, proposals, polkas, opens];
    assert!(counts.iter().all(|c| *c > 0), "spec, vote, duplicate, round vote, proposal, polka, open: {counts:?}");
    assert_eq!(w.honest_agreement().len(), 4, "every replay refused: every honest agent decides every session");
}

/// A small view for the direct tests of the actions: the full-power agent `BYZ` of `N` agents,
/// in round `round` of session 0.
struct Fixture {
    keys: Keyset,
    registry: Registry,
    engine: EngineConfig,
    peers: Vec<AgentId>,
}

impl Fixture {
    fn new() -> Fixture {
        let engine = EngineConfig::default();
        Fixture {
            keys: sim_committee(81, N),
            registry: Registry::seed_committee(N, &engine),
            engine,
            peers: (1..N).map(AgentId).collect(),
        }
    }

    fn env(&self, round: Round) -> Env<'_> {
        Env {
            me: BYZ,
            now: 0,
            signer: &self.keys.agents[BYZ.0 as usize],
            peers: &self.peers,
            committee: Committee::of(&self.registry, Mutation::None),
            registry: &self.registry,
            engine: &self.engine,
            client: AgentId::CLIENT,
            pipeline: 64,
            applied: 0,
            retransmit_ms: 100,
            session: SessionId(0),
            round,
        }
    }

    fn spec(&self, s: u64) -> SignedSpec {
        let spec = SessionSpec {
            session: SessionId(s),
            query: format!("q{s}"),
            candidates: vec![CandidateId(0), CandidateId(1)],
            opened_ms: 0,
        };
        let signature = self.keys.client.sign(&wire::spec_signing_bytes(&spec));
        SignedSpec { spec, signature }
    }

    fn vote(&self, agent: u32, s: u64) -> crate::protocol::SignedVote {
        let vote = vote_on(&self.spec(s).spec, AgentId(agent));
        let signature = self.keys.agents[agent as usize].sign(&wire::vote_signing_bytes(&vote));
        crate::protocol::SignedVote { vote, signature }
    }

    fn round_vote(&self, agent: u32, kind: VoteKind, round: Round, value: ValueId) -> crate::protocol::RoundVote {
        let bytes = wire::round_vote_signing_bytes(kind, SessionId(0), round, Some(value));
        let signature = self.keys.agents[agent as usize].sign(&bytes);
        crate::protocol::RoundVote {
            kind,
            session: SessionId(0),
            round,
            value: Some(value),
            agent: AgentId(agent),
            signature,
        }
    }

    /// Session 0 and 1 opened, every honest agent's vote of both, and a proposal of session 0's
    /// value `A` by agent 1 in round 0; returns the memory and `A`.
    fn memory(&self) -> (Memory, crate::protocol::ProposalValue) {
        let mut m = Memory::default();
        for s in 0..2 {
            m.observe(&Message::Open(self.spec(s)), BYZ);
            for a in 1..N {
                m.observe(&Message::Vote(self.vote(a, s)), BYZ);
            }
        }
        let votes: Vec<_> = (1..N).map(|a| self.vote(a, 0)).collect();
        let spec = self.spec(0);
        let outcome = crate::protocol::recompute(ProposalMode::Normal, &spec, &votes, &self.registry, &self.engine).0;
        let value =
            crate::protocol::ProposalValue { session: SessionId(0), spec, mode: ProposalMode::Normal, votes, outcome };
        let id = ValueId::of(&value);
        let bytes = wire::proposal_id_signing_bytes(SessionId(0), 0, None, id);
        let signature = self.keys.agents[1].sign(&bytes);
        let p = crate::protocol::Proposal {
            round: 0,
            valid_round: None,
            value: value.clone(),
            proposer: AgentId(1),
            signature,
            polka: Vec::new(),
        };
        m.observe(&Message::Proposal(Box::new(p)), BYZ);
        (m, value)
    }
}

fn rng(seed: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    ChaCha8Rng::seed_from_u64(seed)
}

/// A forged spec is never the client's signed spec of the session: another session's, or one
/// whose client signature does not cover it; every kind occurs.
#[test]
fn forged_specs_carry_a_client_signature_that_does_not_cover_them() {
    let f = Fixture::new();
    let (memory, _) = f.memory();
    let (mut foreign, mut renamed, mut altered) = (0, 0, 0);
    for seed in 0..200 {
        let Some(s) = replay::forged_spec(&mut rng(seed), &memory, SessionId(0)) else { panic!("no spec forged") };
        let covered = f.keys.keyring.verify(AgentId::CLIENT, &wire::spec_signing_bytes(&s.spec), &s.signature);
        assert!(s.spec.session != SessionId(0) || !covered, "seed {seed}: the client's own spec {s:?}");
        assert!([f.spec(0).signature, f.spec(1).signature].contains(&s.signature), "a signature it saw");
        foreign += usize::from(s.spec.session != SessionId(0));
        renamed += usize::from(s.spec.session == SessionId(0) && s.spec.query == "q1");
        altered += usize::from(s.spec.query == "q0" && s.spec != f.spec(0).spec);
    }
    assert!(foreign > 10 && renamed > 10 && altered > 10, "{foreign} foreign, {renamed} renamed, {altered} altered");
}

/// A recombined vote keeps the voter and the signature of a vote it saw on other content, which
/// the signature does not cover.
#[test]
fn recombined_votes_do_not_verify() {
    let f = Fixture::new();
    let original = f.vote(2, 1);
    let candidates = f.spec(0).spec.candidates;
    for seed in 0..100 {
        for session in [SessionId(0), SessionId(1)] {
            let v = replay::recombined_vote(&mut rng(seed), &original, &candidates, session);
            assert_eq!((v.vote.agent, v.signature), (AgentId(2), original.signature));
            assert_eq!(v.vote.session, session);
            assert!(!f.keys.keyring.verify(AgentId(2), &wire::vote_signing_bytes(&v.vote), &v.signature), "{v:?}");
        }
    }
}

/// A duplicated-voter set reaches the vote quorum with fewer distinct voters, sorted (adjacent
/// duplicates: what V2's distinct-ascending check refuses).
#[test]
fn duplicated_voter_sets_reach_the_quorum_with_fewer_distinct_voters() {
    let f = Fixture::new();
    let (memory, _) = f.memory();
    let env = f.env(0);
    let mut short = 0;
    for seed in 0..100 {
        let set = replay::duplicated_voter(&mut rng(seed), &env, memory.view(SessionId(0)), SessionId(0))
            .unwrap_or_else(|| panic!("no set"));
        let distinct: BTreeSet<AgentId> = set.iter().map(|v| v.vote.agent).collect();
        assert!(set.len() >= env.committee.vote_q && distinct.len() < set.len(), "seed {seed}: {set:?}");
        assert!(set.windows(2).all(|w| w[0].vote.agent <= w[1].vote.agent));
        short += usize::from(distinct.len() < env.committee.vote_q);
    }
    assert!(short > 30, "{short} of 100 sets have fewer distinct voters than the quorum");
}

/// A recombined round vote is another agent's signature on another value, round, kind or
/// session.
#[test]
fn recombined_round_votes_do_not_verify() {
    let f = Fixture::new();
    let (mut memory, value) = f.memory();
    let id = ValueId::of(&value);
    for a in 1..N {
        memory.observe(&Message::RoundVote(f.round_vote(a, VoteKind::Prevote, 0, id)), BYZ);
    }
    let env = f.env(0);
    let view = memory.view(SessionId(0)).unwrap_or_else(|| panic!("no view"));
    for seed in 0..100 {
        let v = replay::recombined_round_vote(&mut rng(seed), &env, view).unwrap_or_else(|| panic!("none"));
        let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
        assert!(v.agent != BYZ && !f.keys.keyring.verify(v.agent, &bytes, &v.signature), "{v:?}");
    }
}

/// With a polka of `A` in round 0 and agents 2 and 3 seen precommitting `B` in round 1 (locked
/// later, on another value), a re-proposal in round 2 mostly re-proposes `A` with valid round 0
/// and its certificate, to agents 2 and 3 only (L28's case).
#[test]
fn a_reproposal_of_an_older_polka_goes_to_the_agents_locked_later() {
    let f = Fixture::new();
    let (mut memory, value) = f.memory();
    let a = ValueId::of(&value);
    let b = ValueId([7; 32]);
    for agent in 1..N {
        memory.observe(&Message::RoundVote(f.round_vote(agent, VoteKind::Prevote, 0, a)), BYZ);
    }
    for agent in [2, 3] {
        memory.observe(&Message::RoundVote(f.round_vote(agent, VoteKind::Precommit, 1, b)), BYZ);
    }
    let env = f.env(2);
    let (mut targeted, mut certified) = (0, 0);
    for seed in 0..100 {
        let mut out = Vec::new();
        actions::repropose(&mut rng(seed), &env, &memory, SessionId(0), 2, &actions::To::All, &mut out);
        let to: Vec<AgentId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, message: Message::Proposal(p) }
                    if ValueId::of(&p.value) == a && p.valid_round == Some(0) && p.round == 2 =>
                {
                    Some(*to)
                }
                _ => None,
            })
            .collect();
        targeted += usize::from(to == [AgentId(2), AgentId(3)]);
        let polka = out.iter().any(|o| match o {
            Output::Send { message: Message::Proposal(p), .. } | Output::Broadcast(Message::Proposal(p)) => {
                p.polka.len() >= env.committee.q && p.polka.iter().all(|v| v.value == Some(a) && v.round == 0)
            }
            _ => false,
        });
        certified += usize::from(polka);
    }
    assert!(targeted > 40, "{targeted} of 100 re-proposals of A went to the agents locked on B");
    assert!(certified > 40, "{certified} of 100 carried a full polka certificate");
}
