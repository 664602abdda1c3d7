//! Rule-level table tests of the session state machine, in the raft-rs / Malachite style: each
//! row gives an agent a setup (inputs whose outputs are not checked), then the inputs under
//! test, and asserts the outputs of those inputs and the state after them. Every line of
//! docs/protocol.md that is code has a row (`rules.rs`: L1–L47 and L54–L61, `decide.rs`:
//! L48–L53, `validity.rs`: V1–V8, `catchup.rs`: L62–L77), positive and negative.
//!
//! The committee is n = 4 (f = 1, q = 3); session 1's proposer of round r is agent
//! (1 + r) mod 4: agent 1 in round 0, 2 in round 1, 3 in round 2, 0 in round 3. Agent 4 has a
//! key but is not a member. The client opens the session at 0 ms; its deadline is 500 ms.

mod catchup;
mod coverage;
mod decide;
mod rules;
mod validity;

use std::collections::BTreeMap;

use super::{SessionMachine, Step};
use crate::config::{EngineConfig, FallbackPolicy};
use crate::fixed::Ppm;
use crate::protocol::coverage::{Coverage, Point};
use crate::protocol::messages::{
    AgreedOutcome, Commit, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SessionSpec, SignedSpec,
    SignedVote, ValueId, VoteKind,
};
use crate::protocol::{recompute, Agent, Input, Mutation, Node, Output, ProtocolConfig, Rejection, Timer, TimerKind};
use crate::registry::Registry;
use crate::sign::{sim_committee, Keys, Signature, Signer, SimKeyring, SimSigner};
use crate::types::{AgentId, AgentSpecialization, AgentVote, CandidateId, SessionId, TimeMs, VoteValue};
use crate::wire;

/// Every table: each runs as its own test (`table::<name>`), and the coverage test runs them
/// all.
macro_rules! tables {
    ($($file:ident :: $table:ident),+ $(,)?) => {
        const TABLES: &[fn() -> Vec<Case>] = &[$($file::$table),+];

        mod table {
            $(
                #[test]
                fn $table() {
                    super::run(&super::$file::$table());
                }
            )+
        }
    };
}

tables! {
    rules::opening_and_votes_l1_to_l9,
    rules::proposing_l10_to_l21,
    rules::prevoting_l22_to_l25,
    rules::prevoting_with_a_polka_certificate_l26_to_l30,
    rules::the_vote_keeper_l31_to_l33,
    rules::locking_and_precommitting_l34_to_l47,
    rules::rounds_and_timeouts_l54_to_l61,
    decide::deciding_l48_to_l51,
    decide::commit_certificates_l52_to_l53,
    decide::invalid_commit_certificates_l53,
    validity::validity_v1_to_v8,
    catchup::retransmission_and_polka_gossip_l62_to_l65,
    catchup::helping_peers_l66_to_l69,
    catchup::sessions_and_restarts_l70_to_l77,
    coverage::checks_and_rejections,
    coverage::polka_certificates,
    coverage::abstract_states,
}

pub(super) const N: u32 = 4;
pub(super) const S: SessionId = SessionId(1);
pub(super) const CLIENT: AgentId = AgentId::CLIENT;

/// A value by its name in [`Fx::values`]; `NIL` is nil.
pub(super) type Val = &'static str;
pub(super) const NIL: Val = "nil";
/// Every vote (0–3, all for candidate 0), aggregated honestly.
pub(super) const A: Val = "A";
/// Votes 0–2 only: as valid as A, a different value.
pub(super) const B: Val = "B";
/// A's votes with a claimed outcome the engine does not give (V4).
pub(super) const X: Val = "X";

/// The proposer of `round` in session 1.
pub(super) fn proposer(round: Round) -> u32 {
    (1 + round) % N
}

/// Keys, the session spec, and the vote sets and values the rows use.
pub(super) struct Fx {
    keys: Keys<SimSigner, SimKeyring>,
    spec: SignedSpec,
    /// Named sets of four votes (agents 0–3) with per-candidate scores, each aggregating to
    /// one class of docs/protocol.md V10–V13 (see [`vote_sets`]).
    sets: BTreeMap<&'static str, Vec<AgentVote>>,
    values: BTreeMap<Val, ProposalValue>,
}

/// A vote's choice in [`vote_sets`]: a candidate with confidence (ppm) and scores, or abstain.
type Choice = Option<(u32, u32, [u32; 3])>;

/// Vote sets for the engine's classes (n = 4, f = 1; scores keep the detector quiet unless a
/// row wants a flag; confidence above 0.9 is strong dissent).
fn vote_sets() -> [(&'static str, [Choice; 4]); 6] {
    let (c0, c1, c2) = ([900_000, 700_000, 700_000], [700_000, 900_000, 700_000], [700_000, 700_000, 900_000]);
    let only = |c: usize| {
        let mut s = [0; 3];
        s[c] = 900_000;
        s
    };
    [
        // 2-2: a tie of f + 1 per side, broken by weighted evidence (V11).
        ("tie", [Some((0, 950_000, c0)), Some((0, 950_000, c0)), Some((1, 950_000, c1)), Some((1, 950_000, c1))]),
        // 1-1-1 (three votes): a tie of f per side, human review (V11).
        ("tie-of-f", [Some((0, 950_000, c0)), Some((1, 950_000, c1)), Some((2, 950_000, c2)), None]),
        // 2-1-1 with strong dissent split over two candidates: majority rule with dissent (V12).
        ("dissent", [Some((0, 950_000, c0)), Some((0, 950_000, c0)), Some((1, 950_000, c1)), Some((2, 950_000, c2))]),
        // 3-1, the one scoring only candidate 1 far from the others: flagged, re-tallied (V13).
        (
            "flagged",
            [
                Some((0, 950_000, only(0))),
                Some((0, 950_000, only(0))),
                Some((0, 950_000, only(0))),
                Some((1, 950_000, only(1))),
            ],
        ),
        // Flagged, and the rest cannot reach the threshold: human review (V13).
        ("flagged-few", [Some((0, 950_000, only(0))), None, None, Some((1, 950_000, only(1)))]),
        // 2-1 and one vote below its confidence threshold, no strong dissent: no agreement.
        (
            "no-agreement",
            [Some((0, 850_000, c0)), Some((0, 850_000, c0)), Some((1, 850_000, c1)), Some((2, 850_000, c2))],
        ),
    ]
}

impl Fx {
    fn new() -> Fx {
        let keys = sim_committee(7, N + 1);
        let spec = SessionSpec {
            session: S,
            query: "query".into(),
            candidates: vec![CandidateId(0), CandidateId(1), CandidateId(2)],
            opened_ms: 0,
        };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        let mut fx = Fx { keys, spec: SignedSpec { spec, signature }, sets: BTreeMap::new(), values: BTreeMap::new() };
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(N, &engine);
        let value = |fx: &Fx, mode: ProposalMode, votes: Vec<SignedVote>| {
            let (outcome, _) = recompute(mode, &fx.spec, &votes, &registry, &engine);
            ProposalValue { session: S, spec: fx.spec.clone(), mode, votes, outcome }
        };
        let all: Vec<SignedVote> = (0..N).map(|a| fx.signed(fx.vote(a, 0))).collect();
        let a = value(&fx, ProposalMode::Normal, all.clone());
        let mut x = a.clone();
        x.outcome = AgreedOutcome::NoDecision { achieved: Ppm::ZERO };
        let mut forged = a.clone();
        forged.votes[2].signature = Signature([9; 64]);
        let mut unsorted = a.clone();
        unsorted.votes.swap(0, 1);
        let mut duplicated = a.clone();
        duplicated.votes[1] = duplicated.votes[0].clone();
        let mut foreign = fx.vote(3, 0);
        foreign.session = SessionId(2);
        let mut bad_spec = a.clone();
        bad_spec.spec.signature = Signature([9; 64]);
        let abstain: Vec<SignedVote> = (0..N).map(|a| fx.signed(fx.abstain(a))).collect();
        for (name, choices) in vote_sets() {
            let votes = choices.iter().zip(0..N).filter_map(|(choice, agent)| match choice {
                Some((c, confidence, scores)) => Some(fx.scored(agent, *c, *confidence, scores)),
                None if name == "tie-of-f" => None,
                None => Some(fx.abstain(agent)),
            });
            fx.sets.insert(name, votes.collect());
        }
        let set_values: Vec<(Val, ProposalValue)> = fx
            .sets
            .iter()
            .map(|(name, set)| {
                (*name, value(&fx, ProposalMode::Normal, set.iter().map(|v| fx.signed(v.clone())).collect()))
            })
            .collect();
        let mut fallback_wrong = value(&fx, ProposalMode::Fallback, abstain.clone());
        fallback_wrong.outcome = AgreedOutcome::NoDecision { achieved: Ppm::saturating(123) };
        let named = [
            (A, a),
            (B, value(&fx, ProposalMode::Normal, all[..3].to_vec())),
            (X, x),
            ("two-votes", value(&fx, ProposalMode::Normal, all[..2].to_vec())),
            (
                "foreign-vote",
                value(&fx, ProposalMode::Normal, vec![all[0].clone(), all[1].clone(), fx.signed(foreign)]),
            ),
            ("outsider-vote", value(&fx, ProposalMode::Normal, [&all[..2], &[fx.signed(fx.vote(4, 0))]].concat())),
            ("forged-vote", forged),
            ("unsorted", unsorted),
            ("duplicated", duplicated),
            ("bad-spec", bad_spec),
            ("fallback", value(&fx, ProposalMode::Fallback, abstain)),
            ("fallback-decided", value(&fx, ProposalMode::Fallback, all)),
            ("fallback-wrong", fallback_wrong),
        ];
        fx.values = named.into_iter().chain(set_values).collect();
        fx
    }

    pub(super) fn value(&self, v: Val) -> &ProposalValue {
        self.values.get(v).unwrap_or_else(|| panic!("no value {v}"))
    }

    pub(super) fn id(&self, v: Val) -> Option<ValueId> {
        (v != NIL).then(|| ValueId::of(self.value(v)))
    }

    /// A name for a value id in failure messages.
    fn name(&self, id: Option<ValueId>) -> &'static str {
        let Some(id) = id else { return NIL };
        self.values.iter().find(|(_, v)| ValueId::of(v) == id).map_or("?", |(n, _)| *n)
    }

    pub(super) fn vote(&self, agent: u32, candidate: u32) -> AgentVote {
        let mut v = AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            S,
            CandidateId(candidate),
            Ppm::saturating(900_000),
            Ppm::saturating(950_000),
        );
        v.scores = [(CandidateId(candidate), Ppm::saturating(900_000))].into_iter().collect();
        v
    }

    /// A vote for `candidate` with this confidence and these scores for candidates 0–2.
    fn scored(&self, agent: u32, candidate: u32, confidence: u32, scores: &[u32; 3]) -> AgentVote {
        let mut v = self.vote(agent, candidate);
        v.confidence = Ppm::saturating(u64::from(confidence));
        v.value = VoteValue::Accept {
            score: Ppm::saturating(u64::from(scores[candidate as usize])),
            priority: crate::types::Priority::High,
        };
        v.scores = (0..3)
            .filter(|c| scores[*c as usize] > 0)
            .map(|c| (CandidateId(c), Ppm::saturating(u64::from(scores[c as usize]))))
            .collect();
        v
    }

    pub(super) fn abstain(&self, agent: u32) -> AgentVote {
        let mut v = self.vote(agent, 0);
        v.value = VoteValue::Abstain { reason: "unsure".into() };
        v.scores.clear();
        v
    }

    pub(super) fn signed(&self, vote: AgentVote) -> SignedVote {
        let signature = self.keys.agents[vote.agent.0 as usize].sign(&wire::vote_signing_bytes(&vote));
        SignedVote { vote, signature }
    }

    pub(super) fn round_vote(&self, kind: VoteKind, round: Round, agent: u32, v: Val) -> RoundVote {
        let value = self.id(v);
        let signature = self.keys.agents[agent as usize].sign(&wire::round_vote_signing_bytes(kind, S, round, value));
        RoundVote { kind, session: S, round, value, agent: AgentId(agent), signature }
    }

    /// Round `round`'s proposal of `v` by its proposer, with the prevotes of `polka` for `v` in
    /// the valid round as its certificate.
    pub(super) fn proposal(&self, round: Round, v: Val, valid_round: Option<Round>, polka: &[u32]) -> Proposal {
        let value = self.value(v).clone();
        let by = proposer(round);
        let signature = self.keys.agents[by as usize].sign(&wire::proposal_signing_bytes(&value, round, valid_round));
        let polka = valid_round
            .map(|vr| polka.iter().map(|a| self.round_vote(VoteKind::Prevote, vr, *a, v)).collect())
            .unwrap_or_default();
        Proposal { round, valid_round, value, proposer: AgentId(by), signature, polka }
    }

    /// The precommits of `agents` for `v` in `round`.
    pub(super) fn precommit_set(&self, round: Round, v: Val, agents: &[u32]) -> Vec<RoundVote> {
        agents.iter().map(|a| self.round_vote(VoteKind::Precommit, round, *a, v)).collect()
    }

    /// A commit certificate for `v` (proposed in round 0) with the given precommits.
    pub(super) fn commit(&self, v: Val, precommits: Vec<RoundVote>) -> Message {
        Message::Commit(Box::new(Commit { proposal: self.proposal(0, v, None, &[]), precommits }))
    }

    pub(super) fn open(&self) -> Input {
        Input::Receive { from: CLIENT, message: Message::Open(self.spec.clone()) }
    }

    /// An empty script starting at `at_ms`.
    pub(super) fn at(&self, at_ms: TimeMs) -> Script<'_> {
        Script { fx: self, now: at_ms, steps: Vec::new() }
    }

    /// `me` knows the session (at 0 ms), voted, and holds every other agent's vote for
    /// candidate 0 (at 1 ms). Agent 1, the proposer of round 0, proposes A.
    pub(super) fn ready(&self, me: u32) -> Script<'_> {
        self.at(0).open().at(1).own(me, 0).votes(&[0, 1, 2, 3].map(|a| (a, 0)), me)
    }
}

/// Inputs with the time each is given at.
pub(super) struct Script<'f> {
    fx: &'f Fx,
    now: TimeMs,
    steps: Vec<(TimeMs, Input)>,
}

impl Script<'_> {
    pub(super) fn at(mut self, now: TimeMs) -> Self {
        self.now = now;
        self
    }

    pub(super) fn input(mut self, input: Input) -> Self {
        self.steps.push((self.now, input));
        self
    }

    pub(super) fn from(self, from: u32, message: Message) -> Self {
        self.input(Input::Receive { from: AgentId(from), message })
    }

    pub(super) fn open(self) -> Self {
        let open = self.fx.open();
        self.input(open)
    }

    pub(super) fn own(self, me: u32, candidate: u32) -> Self {
        let vote = self.fx.vote(me, candidate);
        self.input(Input::LocalVote(vote))
    }

    /// Signed votes `(agent, candidate)` from each agent but `me`.
    pub(super) fn votes(mut self, votes: &[(u32, u32)], me: u32) -> Self {
        for (a, c) in votes.iter().copied().filter(|(a, _)| *a != me) {
            let vote = self.fx.signed(self.fx.vote(a, c));
            self = self.from(a, Message::Vote(vote));
        }
        self
    }

    pub(super) fn proposal(self, round: Round, v: Val, valid_round: Option<Round>, polka: &[u32]) -> Self {
        let p = self.fx.proposal(round, v, valid_round, polka);
        self.from(proposer(round), Message::Proposal(Box::new(p)))
    }

    /// Each agent's prevote or precommit for `v` in `round`, sent by itself.
    pub(super) fn round_votes(mut self, kind: VoteKind, round: Round, v: Val, agents: &[u32]) -> Self {
        for a in agents {
            let rv = self.fx.round_vote(kind, round, *a, v);
            self = self.from(*a, Message::RoundVote(rv));
        }
        self
    }

    pub(super) fn prevotes(self, round: Round, v: Val, agents: &[u32]) -> Self {
        self.round_votes(VoteKind::Prevote, round, v, agents)
    }

    pub(super) fn precommits(self, round: Round, v: Val, agents: &[u32]) -> Self {
        self.round_votes(VoteKind::Precommit, round, v, agents)
    }

    /// Vote set `name` of [`vote_sets`]: `me`'s as its own vote, the others' signed.
    pub(super) fn vote_set(mut self, name: &str, me: u32) -> Self {
        let set = self.fx.sets.get(name).cloned().unwrap_or_else(|| panic!("no vote set {name}"));
        for vote in set {
            self = if vote.agent.0 == me {
                self.input(Input::LocalVote(vote))
            } else {
                let from = vote.agent.0;
                let signed = self.fx.signed(vote);
                self.from(from, Message::Vote(signed))
            };
        }
        self
    }

    pub(super) fn timeout(self, round: Round, kind: TimerKind) -> Self {
        self.input(Input::Timeout(Timer { session: S, round, kind }))
    }
}

/// Configuration a row changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Setting {
    Plain,
    /// The design's timeout fallback (> 50%) is on.
    Fallback,
    /// A deliberately broken protocol.
    Mutation(Mutation),
}

/// What a row expects of the outputs of its inputs under test, or of the state after them.
#[derive(Clone, Debug)]
pub(super) enum Expect {
    /// Broadcasts its prevote of (round, value).
    Prevote(Round, Val),
    /// Broadcasts its precommit of (round, value).
    Precommit(Round, Val),
    /// Broadcasts no prevote or precommit.
    NoRoundVote,
    /// Broadcasts a proposal of this round and valid round, carrying this many votes and
    /// certificate prevotes, in this mode.
    Proposes {
        round: Round,
        valid_round: Option<Round>,
        votes: usize,
        polka: usize,
        mode: ProposalMode,
    },
    /// Re-broadcasts the proposal of this round (as received).
    Relays(Round),
    /// Broadcasts no proposal.
    NoProposal,
    /// Broadcasts this many prevotes of (round, value).
    PrevotesRelayed(Round, Val, usize),
    /// Schedules a timer of this kind at this time.
    Schedules(TimerKind, TimeMs),
    /// Schedules no timer of this kind.
    NoSchedule(TimerKind),
    /// Asks the evaluator for its vote.
    Evaluates,
    /// Broadcasts its own vote.
    BroadcastsOwnVote,
    /// Decides (round, value).
    Decides(Round, Val),
    NoDecision,
    /// Sends a commit certificate to this agent.
    SendsCommit(AgentId),
    /// Sends nothing to anyone.
    SendsNothing,
    /// Sends `Sync(next)` to this agent.
    SendsSync(AgentId, u64),
    /// Sends its own round vote of (kind, round) to this agent.
    SendsRoundVote(AgentId, VoteKind, Round),
    Rejects(Rejection),
    NoRejection,
    /// Emits evidence against this agent.
    Evidence(u32),
    NoEvidence,
    // The state afterwards.
    InRound(Round),
    InStep(Step),
    Locked(Option<(Round, Val)>),
    Valid(Option<(Round, Val)>),
    /// Distinct signers of (kind, round) for the value.
    Tally(VoteKind, Round, Val, usize),
    /// Votes held (L8).
    VotesHeld(usize),
    /// The session's spec is known.
    KnowsSpec(bool),
    /// The inputs under test reached this coverage point (docs/coverage.md).
    Covers(Point),
}

/// Makes a script from the fixture.
pub(super) type Make = Box<dyn for<'f> Fn(&'f Fx) -> Script<'f>>;

/// One row: `lines` of docs/protocol.md, what it shows, the agent, the setup and the inputs
/// under test, and what they must do.
pub(super) struct Case {
    pub lines: &'static str,
    pub name: &'static str,
    pub me: u32,
    pub setting: Setting,
    pub setup: Make,
    pub input: Make,
    pub expect: Vec<Expect>,
}

pub(super) fn case(
    lines: &'static str,
    name: &'static str,
    me: u32,
    setup: impl for<'f> Fn(&'f Fx) -> Script<'f> + 'static,
    input: impl for<'f> Fn(&'f Fx) -> Script<'f> + 'static,
    expect: &[Expect],
) -> Case {
    Case {
        lines,
        name,
        me,
        setting: Setting::Plain,
        setup: Box::new(setup),
        input: Box::new(input),
        expect: expect.to_vec(),
    }
}

type Honest = Agent<SimSigner, SimKeyring>;

fn agent(fx: &Fx, me: u32, setting: Setting) -> Honest {
    let mut engine = EngineConfig::default();
    if setting == Setting::Fallback {
        engine.fallback = FallbackPolicy::SimpleMajority;
    }
    let registry = Registry::seed_committee(N, &engine);
    let mutation = match setting {
        Setting::Mutation(m) => m,
        _ => Mutation::None,
    };
    let protocol = ProtocolConfig { pipeline: 64, mutation, ..ProtocolConfig::default() };
    Agent::new(fx.keys.agents[me as usize].clone(), fx.keys.keyring.clone(), registry, engine, protocol)
}

fn feed(node: &mut Honest, script: Script<'_>) -> Vec<Output> {
    let mut out = Vec::new();
    for (now, input) in script.steps {
        node.handle(now, input, &mut out);
    }
    out
}

/// Runs every row; a failure names the row, its lines and what happened. Returns the coverage
/// the rows' agents reached.
pub(super) fn run(cases: &[Case]) -> Coverage {
    let fx = Fx::new();
    let mut reached = Coverage::default();
    for c in cases {
        let mut node = agent(&fx, c.me, c.setting);
        let _ = feed(&mut node, (c.setup)(&fx));
        let before = node.coverage().clone();
        let out = feed(&mut node, (c.input)(&fx));
        reached.merge(node.coverage());
        let machine = node.session_state(S);
        for e in &c.expect {
            let holds = match e {
                Expect::Covers(point) => node.coverage().count(*point) > before.count(*point),
                _ => holds(&fx, e, &out, machine),
            };
            if !holds {
                panic!(
                    "{} ({}): expected {e:?}\noutputs:\n{}\nstate: {}",
                    c.lines,
                    c.name,
                    describe(&fx, &out),
                    machine.map_or("no session".into(), |m| state(&fx, m))
                );
            }
        }
    }
    reached
}

fn holds(fx: &Fx, e: &Expect, out: &[Output], m: Option<&SessionMachine>) -> bool {
    let round_votes = || {
        out.iter().filter_map(|o| match o {
            Output::Broadcast(Message::RoundVote(v)) => Some(v),
            _ => None,
        })
    };
    let proposals = || {
        out.iter().filter_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some(&**p),
            _ => None,
        })
    };
    let sends = || {
        out.iter().filter_map(|o| match o {
            Output::Send { to, message } => Some((*to, message)),
            _ => None,
        })
    };
    let pair = |x: Option<(Round, ValueId)>| x.map(|(r, id)| (r, fx.name(Some(id))));
    match e.clone() {
        Expect::Prevote(r, v) | Expect::Precommit(r, v) => {
            let kind = if matches!(e, Expect::Prevote(..)) { VoteKind::Prevote } else { VoteKind::Precommit };
            round_votes().any(|x| x.kind == kind && x.round == r && x.value == fx.id(v))
        }
        Expect::NoRoundVote => round_votes().next().is_none(),
        Expect::Proposes { round, valid_round, votes, polka, mode } => proposals().any(|p| {
            p.round == round
                && p.valid_round == valid_round
                && p.value.votes.len() == votes
                && p.polka.len() == polka
                && p.value.mode == mode
        }),
        Expect::Relays(r) => proposals().any(|p| p.round == r),
        Expect::NoProposal => proposals().next().is_none(),
        Expect::PrevotesRelayed(r, v, n) => {
            round_votes().filter(|x| x.kind == VoteKind::Prevote && x.round == r && x.value == fx.id(v)).count() == n
        }
        Expect::Schedules(kind, at) => {
            out.iter().any(|o| matches!(o, Output::Schedule { timer, at_ms } if timer.kind == kind && *at_ms == at))
        }
        Expect::NoSchedule(kind) => {
            !out.iter().any(|o| matches!(o, Output::Schedule { timer, .. } if timer.kind == kind))
        }
        Expect::Evaluates => out.iter().any(|o| matches!(o, Output::Evaluate(_))),
        Expect::BroadcastsOwnVote => out.iter().any(|o| matches!(o, Output::Broadcast(Message::Vote(_)))),
        Expect::Decides(r, v) => out.iter().any(|o| match o {
            Output::Decide(d) => d.round == Some(r) && d.value == fx.id(v),
            _ => false,
        }),
        Expect::NoDecision => !out.iter().any(|o| matches!(o, Output::Decide(_))),
        Expect::SendsCommit(to) => sends().any(|(t, m)| t == to && matches!(m, Message::Commit(_))),
        Expect::SendsNothing => sends().next().is_none(),
        Expect::SendsSync(to, n) => sends().any(|(t, m)| t == to && matches!(m, Message::Sync { next } if next.0 == n)),
        Expect::SendsRoundVote(to, kind, r) => {
            sends().any(|(t, m)| t == to && matches!(m, Message::RoundVote(v) if v.kind == kind && v.round == r))
        }
        Expect::Rejects(reason) => out.iter().any(|o| matches!(o, Output::Reject { reason: x, .. } if *x == reason)),
        Expect::NoRejection => !out.iter().any(|o| matches!(o, Output::Reject { .. })),
        Expect::Evidence(a) => out.iter().any(|o| matches!(o, Output::Evidence(e) if e.culprit() == AgentId(a))),
        Expect::NoEvidence => !out.iter().any(|o| matches!(o, Output::Evidence(_))),
        Expect::InRound(r) => m.is_some_and(|m| m.round == r),
        Expect::InStep(s) => m.is_some_and(|m| m.step == s),
        Expect::Locked(l) => m.is_some_and(|m| pair(m.locked) == l),
        Expect::Valid(l) => m.is_some_and(|m| pair(m.valid) == l),
        Expect::Tally(kind, r, v, n) => m.is_some_and(|m| m.keeper.count(r, kind, fx.id(v)) == n),
        Expect::VotesHeld(n) => m.is_some_and(|m| m.votes.len() == n),
        Expect::KnowsSpec(k) => m.is_some_and(|m| m.spec.is_some() == k),
        Expect::Covers(_) => false, // checked by `run` against the agent's coverage
    }
}

fn describe(fx: &Fx, out: &[Output]) -> String {
    let line = |o: &Output| match o {
        Output::Broadcast(Message::RoundVote(v)) | Output::Send { message: Message::RoundVote(v), .. } => {
            format!("{:?} r{} {} by {}", v.kind, v.round, fx.name(v.value), v.agent.0)
        }
        Output::Broadcast(Message::Proposal(p)) => format!(
            "proposal r{} vr {:?} {} ({} votes, {} polka)",
            p.round,
            p.valid_round,
            fx.name(Some(ValueId::of(&p.value))),
            p.value.votes.len(),
            p.polka.len()
        ),
        Output::Decide(d) => format!("decide r{:?} {}", d.round, fx.name(d.value)),
        other => format!("{other:?}").chars().take(120).collect(),
    };
    out.iter().map(|o| format!("  {}\n", line(o))).collect()
}

fn state(fx: &Fx, m: &SessionMachine) -> String {
    let pair = |x: Option<(Round, ValueId)>| x.map(|(r, id)| (r, fx.name(Some(id))));
    format!(
        "round {} step {:?} locked {:?} valid {:?} votes {} decided {}",
        m.round,
        m.step,
        pair(m.locked),
        pair(m.valid),
        m.votes.len(),
        m.decided.is_some()
    )
}
