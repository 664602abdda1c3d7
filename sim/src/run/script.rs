//! The scripted mode: a model schedule (`model::schedule`) run in the simulator. Every honest
//! agent is the real `Agent` driven by the real `consensus_core::runner::Runner` on madsim,
//! observed by the world's oracle and trace (`WorldObserver`), as in any run; what differs is
//! who decides the interleaving. Instead of the network model, a conductor performs the
//! schedule's steps in order:
//! - `deliver`: the frame an honest agent sent (held in a pool since it was sent) goes into the
//!   recipient's inbox; a frame that was never sent means the replay diverged;
//! - `inject`: the Byzantine agent's frame, exactly as scheduled, goes into the inbox (nothing
//!   else of a Byzantine agent's runs);
//! - `fire`: the agent's clock moves to the timer's time, and its runner fires what is due.
//!
//! Each agent has its own clock, moved only by its scheduled timers (the model's clocks:
//! asynchrony, no global time); the trace's time is the conductor's, 1 ms per step, so the
//! space-time diagram draws the steps in order. Frames nobody schedules (retransmissions, the
//! status tick) stay in the pool. The evaluation answers at once with the schedule's vote.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use consensus_core::evaluator::{Evaluation, EvaluationRequest, Evaluator};
use consensus_core::protocol::messages::Message;
use consensus_core::protocol::{Input, Timer, TimerKind};
use consensus_core::runner::{Clock, Frame, Observer, Runner, RunnerEvent, TransportRx, TransportTx};
use consensus_core::{AgentId, AgentSpecialization, TimeMs};
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_core::Stream;

use crate::model::schedule::{Action, Schedule};
use crate::oracle::{Oracle, Promises, Violation};
use crate::trace::TraceEvent;
use crate::world::{NetModel, World, WorldObserver};

use super::{lock, SimClock};

/// What a scripted replay did.
pub struct ScriptOutput {
    /// The first violation the oracle saw, if any.
    pub violation: Option<Violation>,
    /// Steps performed (all of them, or up to the violation or a divergence).
    pub steps_done: usize,
    /// Where the simulator did not follow the schedule: the step (1-based) and what happened.
    pub divergence: Option<(usize, String)>,
    /// Timers the runners fired that no step scheduled (retransmission, status: the model does
    /// not model them; their re-sends stayed in the pool).
    pub extra_timers: Vec<(AgentId, Timer)>,
    /// Every event (the trace of `bftsim reproduce`).
    pub trace: Vec<TraceEvent>,
}

/// Per agent: its clock (ms) and the waker of its runner's pending sleep.
#[derive(Default)]
struct Clocks {
    now: Vec<TimeMs>,
    sleeping: Vec<Option<Waker>>,
}

#[derive(Clone)]
struct ScriptClock {
    me: usize,
    clocks: Arc<Mutex<Clocks>>,
}

impl Clock for ScriptClock {
    fn now_ms(&self) -> TimeMs {
        lock(&self.clocks).now[self.me]
    }
    fn sleep_until(&self, at_ms: TimeMs) -> impl std::future::Future<Output = ()> {
        let (me, clocks) = (self.me, self.clocks.clone());
        std::future::poll_fn(move |cx| {
            let mut c = lock(&clocks);
            if c.now[me] >= at_ms {
                return Poll::Ready(());
            }
            c.sleeping[me] = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// Frames honest agents sent, waiting for a `deliver` step: (from, to, frame, sent at).
type Pool = Arc<Mutex<Vec<(AgentId, AgentId, Frame, TimeMs)>>>;

struct PoolTx {
    me: AgentId,
    pool: Pool,
    clock: SimClock,
}

impl TransportTx for PoolTx {
    fn send(&self, to: AgentId, frame: Frame) -> impl std::future::Future<Output = ()> {
        lock(&self.pool).push((self.me, to, frame, self.clock.now_ms()));
        std::future::ready(())
    }
}

struct Inbox(UnboundedReceiver<(AgentId, Frame)>);

impl TransportRx for Inbox {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<(AgentId, Frame)>> {
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.0).poll_next(cx))
    }
}

/// The schedule's vote, at once.
struct Fixed(consensus_core::AgentVote);

impl Evaluator for Fixed {
    fn evaluate(&mut self, _: &EvaluationRequest<'_>) -> Evaluation {
        Evaluation { vote: self.0.clone(), latency_ms: 0 }
    }
}

/// The world's observer at the conductor's time; timers fired are noted for the conductor.
struct Script {
    inner: WorldObserver,
    clock: SimClock,
    fired: Arc<Mutex<Vec<(AgentId, Timer)>>>,
}

impl Observer for Script {
    fn on_event(&mut self, agent: AgentId, _agent_ms: TimeMs, event: &RunnerEvent<'_>) {
        if let RunnerEvent::Timeout(t) = event {
            lock(&self.fired).push((agent, *t));
        }
        let now = self.clock.now_ms();
        self.inner.on_event(agent, now, event);
    }
}

/// Runs `schedule` (validated by `Schedule::parse`) in the simulator.
pub fn replay(schedule: &Schedule) -> Result<ScriptOutput, String> {
    let setup = schedule.setup()?;
    let actions = schedule.actions().map_err(|(i, m)| format!("step {}: {m}", i + 1))?;
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(0, madsim::Config::default());
    runtime.set_time_limit(Duration::from_secs(3_600));
    Ok(runtime.block_on(conduct(setup, schedule.votes.clone(), actions)))
}

/// What every runner and the conductor share.
struct Stage {
    world: Arc<Mutex<World>>,
    clock: SimClock,
    clocks: Arc<Mutex<Clocks>>,
    pool: Pool,
    fired: Arc<Mutex<Vec<(AgentId, Timer)>>>,
    /// When the frame each agent receives next was sent (the trace draws deliveries from it).
    sent_at: Vec<Arc<AtomicU64>>,
}

type Inboxes = Vec<Option<UnboundedSender<(AgentId, Frame)>>>;

async fn conduct(setup: crate::model::Setup, votes: Vec<u32>, actions: Vec<Action>) -> ScriptOutput {
    let stage = Stage::new(&setup, &votes);
    let (inboxes, tasks) = stage.spawn_runners(&setup, &votes).await;
    let mut out =
        ScriptOutput { violation: None, steps_done: 0, divergence: None, extra_timers: Vec::new(), trace: Vec::new() };
    stage.perform_all(&actions, &inboxes, &mut out).await;
    // Closing the inboxes ends every runner.
    drop(inboxes);
    for t in tasks {
        let _ = t.await;
    }
    stage.finish(&mut out);
    out
}

impl Stage {
    /// The world (the model's oracle and promises, a trace) and the shared state, empty.
    fn new(setup: &crate::model::Setup, votes: &[u32]) -> Stage {
        let n = setup.config.agents as usize;
        let byzantine: BTreeSet<AgentId> = setup.byzantine.iter().copied().collect();
        let oracle = Oracle::new(
            setup.keys.keyring.clone(),
            setup.registry.clone(),
            setup.engine,
            setup.protocol,
            setup.honest_set(),
        )
        .with_promises(Promises::of(n as u64, byzantine.len() as u64));
        let net = NetModel { drop: 0.0, latency_ms: (1, 1), tail: None, duplicate: 0.0 };
        let world = Arc::new(Mutex::new(World::new(0, net, oracle, byzantine.clone(), true)));
        let setup_line = format!(
            "setup: model schedule: {n} agents, byzantine {:?} (scheduled), 1 session × {} candidates, votes {votes:?}",
            byzantine.iter().map(|a| a.0).collect::<Vec<_>>(),
            setup.config.candidates
        );
        let spec = &setup.open.spec;
        let open = format!("open {} candidates (every honest agent has it first)", spec.candidates.len());
        {
            let mut w = lock(&world);
            w.record_fault(0, setup_line, None);
            w.record_open(0, spec.session.0, open);
        }
        Stage {
            world,
            clock: SimClock::start(),
            clocks: Arc::new(Mutex::new(Clocks { now: vec![0; n], sleeping: vec![None; n] })),
            pool: Arc::default(),
            fired: Arc::default(),
            sent_at: (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect(),
        }
    }

    /// Every honest agent's runner, started with the session's `Open`, one after another (the
    /// model's initial state).
    async fn spawn_runners(
        &self,
        setup: &crate::model::Setup,
        votes: &[u32],
    ) -> (Inboxes, Vec<madsim::task::JoinHandle<()>>) {
        let n = setup.config.agents as usize;
        let mut inboxes: Inboxes = (0..n).map(|_| None).collect();
        let committee: Vec<AgentId> = (0..n as u32).map(AgentId).collect();
        let mut tasks = Vec::new();
        for a in setup.honest.clone() {
            let i = a.0 as usize;
            let (tx, rx) = unbounded();
            inboxes[i] = Some(tx);
            let observer = Script {
                inner: WorldObserver { world: self.world.clone(), last_sent_ms: self.sent_at[i].clone(), copy: 0 },
                clock: self.clock.clone(),
                fired: self.fired.clone(),
            };
            let vote = setup.vote(a, votes.get(i).copied().unwrap_or(0));
            lock(&self.world).oracle.on_client_spec(&setup.open);
            let runner = Runner::new(
                setup.agent(a),
                AgentSpecialization::cycled(i),
                PoolTx { me: a, pool: self.pool.clone(), clock: self.clock.clone() },
                Inbox(rx),
                ScriptClock { me: i, clocks: self.clocks.clone() },
                Fixed(vote),
                observer,
                committee.clone(),
            )
            .start_with(Input::Receive { from: AgentId::CLIENT, message: Message::Open(setup.open.clone()) });
            tasks.push(madsim::task::spawn(async move {
                runner.run().await;
            }));
            madsim::time::sleep(Duration::from_millis(1)).await;
        }
        (inboxes, tasks)
    }

    /// The steps in order, until a violation or a divergence.
    async fn perform_all(&self, actions: &[Action], inboxes: &Inboxes, out: &mut ScriptOutput) {
        for (k, action) in actions.iter().enumerate() {
            if lock(&self.world).oracle.violation().is_some() {
                break;
            }
            lock(&self.fired).clear();
            let links = Links { pool: &self.pool, clocks: &self.clocks, inboxes, sent_at: &self.sent_at };
            if let Err(why) = perform(action, &self.world, &self.clock, &links) {
                out.divergence = Some((k + 1, why));
                break;
            }
            // Every runner takes what it was given (no step waits for time but its own timers).
            madsim::time::sleep(Duration::from_millis(1)).await;
            out.steps_done = k + 1;
            let fired_now = std::mem::take(&mut *lock(&self.fired));
            if let Action::Fire { agent, timer, .. } = action {
                if !fired_now.contains(&(*agent, *timer)) {
                    out.divergence = Some((k + 1, format!("{agent}'s runner did not fire {timer:?}")));
                    break;
                }
            }
            let scheduled =
                |f: &(AgentId, Timer)| matches!(action, Action::Fire { agent, timer, .. } if (*agent, *timer) == *f);
            let extra: Vec<(AgentId, Timer)> = fired_now.into_iter().filter(|f| !scheduled(f)).collect();
            // Re-sends (retransmission, the status tick) go into the pool undelivered; any
            // other timer the schedule did not name changed an agent as the model's did not
            // (a round timeout beyond the checked rounds, a deadline reached by a clock jump).
            if let Some((agent, timer)) = extra.iter().find(|(_, t)| !resends_only(t.kind)) {
                out.divergence =
                    Some((k + 1, format!("{agent}'s runner also fired {timer:?}, which the schedule does not")));
                break;
            }
            out.extra_timers.extend(extra);
        }
    }

    /// The oracle's violation, recorded at the end of the trace (as a run's), and the trace.
    fn finish(&self, out: &mut ScriptOutput) {
        let mut w = lock(&self.world);
        out.violation = w.oracle.violation().cloned();
        if let Some(v) = &out.violation {
            let detail = format!("{}: {}", v.invariant, v.detail);
            let key = crate::trace::Key { extra: v.step, ..Default::default() };
            let now = self.clock.now_ms();
            w.trace.record(now, "violation", key, |step| TraceEvent {
                step,
                time_ms: v.time_ms,
                kind: "violation".into(),
                detail,
                ..Default::default()
            });
        }
        out.trace = std::mem::take(&mut w.trace).into_events();
    }
}

/// What the conductor reaches into: the pool, the agents' clocks and inboxes.
struct Links<'a> {
    pool: &'a Pool,
    clocks: &'a Arc<Mutex<Clocks>>,
    inboxes: &'a [Option<UnboundedSender<(AgentId, Frame)>>],
    sent_at: &'a [Arc<AtomicU64>],
}

/// Performs one step; `Err` when the simulator cannot follow it.
/// Timers whose firing only re-sends what was sent (into the pool, delivered only if scheduled).
fn resends_only(kind: TimerKind) -> bool {
    matches!(kind, TimerKind::Retransmit | TimerKind::Status | TimerKind::Adversary)
}

fn perform(action: &Action, world: &Arc<Mutex<World>>, clock: &SimClock, links: &Links<'_>) -> Result<(), String> {
    let send = |from: AgentId, to: AgentId, frame: Frame, sent_ms: TimeMs| -> Result<(), String> {
        let i = to.0 as usize;
        let inbox = links.inboxes.get(i).and_then(Option::as_ref).ok_or(format!("{to} has no inbox"))?;
        if let Some(at) = links.sent_at.get(i) {
            at.store(sent_ms, std::sync::atomic::Ordering::Relaxed);
        }
        inbox.unbounded_send((from, frame)).map_err(|_| format!("{to}'s runner has stopped"))
    };
    match action {
        Action::Deliver { from, to, frame, message } => {
            let mut p = lock(links.pool);
            let at = p.iter().position(|(f, t, b, _)| f == from && t == to && b[..] == frame[..]).ok_or_else(|| {
                format!("{from} never sent {to} this message: {}", crate::model::describe_message(message))
            })?;
            let (_, _, frame, sent_ms) = p.remove(at);
            drop(p);
            send(*from, *to, frame, sent_ms)
        }
        Action::Inject { from, to, frame, message } => {
            // The Byzantine agent's send, recorded as any agent's (the diagram draws it).
            let mut observer =
                WorldObserver { world: world.clone(), last_sent_ms: Arc::new(AtomicU64::new(0)), copy: 0 };
            let event = RunnerEvent::Send { to: *to, message, bytes: frame.len() };
            observer.on_event(*from, clock.now_ms(), &event);
            send(*from, *to, Frame::from(frame.as_slice()), clock.now_ms())
        }
        Action::Fire { agent, at_ms, .. } => {
            let mut c = lock(links.clocks);
            let i = agent.0 as usize;
            c.now[i] = c.now[i].max(*at_ms);
            if let Some(w) = c.sleeping[i].take() {
                w.wake();
            }
            Ok(())
        }
    }
}
