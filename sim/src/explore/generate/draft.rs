//! The scenario being drawn ([`Draft`]): the committee, the Byzantine agents, the network, the
//! workload and the fault windows, each written into the draft's TOML table as it is drawn.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{draw, draw32, draw_f, groups_value, int, random_groups, round2, set, Bound, Draft};
use crate::explore::envelope::Envelope;
use crate::scenario::Behaviour;

impl Draft {
    pub(super) fn bound(&self) -> Bound {
        Bound {
            gst_ms: self.gst_ms,
            agents: self.agents,
            sessions: self.sessions,
            latency_max_ms: self.latency_max_ms,
            tail_max_ms: self.tail_max_ms,
            timeouts: self.timeouts,
        }
    }

    pub(super) fn agents(&mut self, n: u32) {
        self.agents = n;
        set(&mut self.table, "agents.count", int(u64::from(n)));
        let bucket = match n {
            0..=4 => "n:4",
            5..=7 => "n:5-7",
            8..=13 => "n:8-13",
            _ => "n:14+",
        };
        self.features.insert(bucket.into());
    }

    /// Makes `behaviours.len()` random agents Byzantine; returns them in index order (the
    /// behaviours are given in that order).
    pub(super) fn byzantine(&mut self, rng: &mut ChaCha8Rng, n: u32, behaviours: &[Behaviour]) -> Vec<u32> {
        let mut all: Vec<u32> = (0..n).collect();
        all.shuffle(rng);
        let mut chosen: Vec<u32> = all.into_iter().take(behaviours.len()).collect();
        chosen.sort_unstable();
        let b = chosen.len() as u32;
        self.byzantine_count = b;
        set(&mut self.table, "byzantine.count", int(u64::from(b)));
        set(&mut self.table, "byzantine.agents", Value::Array(chosen.iter().map(|a| int(u64::from(*a))).collect()));
        let names: Vec<Value> = behaviours.iter().map(|x| Value::String(x.name().into())).collect();
        if names.iter().all(|x| Some(x) == names.first()) {
            if let Some(first) = names.first() {
                set(&mut self.table, "byzantine.strategy", first.clone());
            }
        } else {
            set(&mut self.table, "byzantine.strategies", Value::Array(names));
        }
        for x in behaviours {
            self.features.insert(format!("behaviour:{}", x.name()));
        }
        let f_max = n.saturating_sub(1) / 3;
        let share = if b > f_max {
            "byzantine:beyond-f-max"
        } else if b == f_max {
            "byzantine:f-max"
        } else {
            "byzantine:below-f-max"
        };
        self.features.insert(share.into());
        if behaviours.len() > 1 && behaviours.iter().any(|x| Some(x) != behaviours.first()) {
            self.features.insert("byzantine:mixed".into());
        }
        chosen
    }

    pub(super) fn network(
        &mut self,
        rng: &mut ChaCha8Rng,
        e: &Envelope,
        loss: bool,
        high: bool,
        tail: bool,
        dup: bool,
    ) {
        let n = &e.network;
        if loss {
            set(&mut self.table, "network.drop", Value::Float(round2(draw_f(rng, n.drop))));
        }
        let min = draw(rng, n.latency_min_ms);
        let max = if high {
            rng.gen_range((min + 1).max(51).max(n.latency_max_ms[0])..=n.latency_max_ms[1].max(51))
        } else {
            rng.gen_range((min + 1).max(n.latency_max_ms[0]).min(50)..=50)
        };
        let max = max.max(min);
        self.latency_max_ms = max;
        set(&mut self.table, "network.latency_ms", Value::Array(vec![int(min), int(max)]));
        if tail {
            let scale = draw(rng, n.tail_scale_ms).max(1);
            let cap = draw(rng, n.tail_max_ms).max(scale);
            let mut t = Table::new();
            t.insert("kind".into(), Value::String("pareto".into()));
            t.insert("scale_ms".into(), int(scale));
            t.insert("shape".into(), Value::Float(round2(rng.gen_range(1.1..3.0))));
            t.insert("max_ms".into(), int(cap));
            set(&mut self.table, "network.tail", Value::Table(t));
            self.tail_max_ms = cap;
        }
        if dup {
            set(&mut self.table, "network.duplicate", Value::Float(round2(draw_f(rng, n.duplicate))));
        }
    }

    pub(super) fn workload(&mut self, rng: &mut ChaCha8Rng, e: &Envelope, concurrency: bool) {
        let w = &e.workload;
        self.sessions = draw(rng, w.sessions);
        set(&mut self.table, "workload.sessions", int(self.sessions));
        set(&mut self.table, "workload.candidates", int(u64::from(draw32(rng, w.candidates))));
        set(&mut self.table, "workload.quality_gap", Value::Float(round2(draw_f(rng, w.quality_gap))));
        if concurrency {
            set(&mut self.table, "workload.concurrency", int(draw(rng, w.concurrency)));
        }
    }

    /// `k` partition windows before `gst`, none overlapping (a partition replaces the one in
    /// effect, so overlapping windows would heal each other).
    pub(super) fn partitions(&mut self, rng: &mut ChaCha8Rng, n: u32, gst: u64, k: u32, one_way: f64) {
        let mut points: Vec<u64> = (0..2 * k).map(|_| rng.gen_range(0..=gst)).collect();
        points.sort_unstable();
        for pair in points.chunks(2) {
            let [start, end] = [pair[0], pair.get(1).copied().unwrap_or(gst).max(pair[0] + 1)];
            let groups = random_groups(rng, n, 2);
            let mut t = Table::new();
            t.insert("kind".into(), Value::String("partition".into()));
            t.insert("groups".into(), groups_value(&groups));
            if rng.gen_bool(one_way) {
                t.insert("one_way".into(), Value::Boolean(true));
            }
            self.faults.push((start, t));
            let mut heal = Table::new();
            heal.insert("kind".into(), Value::String("heal".into()));
            self.faults.push((end, heal));
        }
    }

    /// `k` crash/restart pairs of distinct agents before `gst`.
    pub(super) fn crashes(&mut self, rng: &mut ChaCha8Rng, n: u32, gst: u64, k: u32) {
        let mut agents: Vec<u32> = (0..n).collect();
        agents.shuffle(rng);
        for agent in agents.into_iter().take(k.min(n.saturating_sub(1)) as usize) {
            let start = rng.gen_range(0..gst.max(1));
            let end = rng.gen_range(start + 1..=gst.max(start + 1));
            for (at, kind) in [(start, "crash"), (end, "restart")] {
                let mut t = Table::new();
                t.insert("kind".into(), Value::String(kind.into()));
                t.insert("agent".into(), int(u64::from(agent)));
                self.faults.push((at, t));
            }
        }
    }

    /// `k` clog windows (an agent or a link) before `gst`.
    pub(super) fn clogs(&mut self, rng: &mut ChaCha8Rng, n: u32, gst: u64, k: u32) {
        for _ in 0..k {
            let start = rng.gen_range(0..gst.max(1));
            let end = rng.gen_range(start + 1..=gst.max(start + 1));
            let target = if n >= 2 && rng.gen_bool(0.5) {
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..n)) % n;
                ("link", Value::Array(vec![int(u64::from(a)), int(u64::from(b))]))
            } else {
                ("agent", int(u64::from(rng.gen_range(0..n))))
            };
            for (at, kind) in [(start, "clog"), (end, "unclog")] {
                let mut t = Table::new();
                t.insert("kind".into(), Value::String(kind.into()));
                t.insert(target.0.into(), target.1.clone());
                self.faults.push((at, t));
            }
        }
    }

    pub(super) fn faults_value(&mut self) -> Option<Value> {
        if self.faults.is_empty() {
            return None;
        }
        // Stable by time: a window's end never precedes its start.
        self.faults.sort_by_key(|(at, _)| *at);
        let list = self
            .faults
            .drain(..)
            .map(|(at, mut t)| {
                t.insert("at_ms".into(), int(at));
                Value::Table(t)
            })
            .collect();
        Some(Value::Array(list))
    }
}
