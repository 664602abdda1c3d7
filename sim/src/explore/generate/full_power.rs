//! The `full-power` Byzantine agent in generated runs (`[full_power]` of the envelope): a
//! second Byzantine agent beside a Twins twin, and the knobs of every full-power agent. Its
//! draws come from the run's own `explore-full-power` stream, so that every other draw of the
//! run is what it was without it.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use consensus_core::adversary::Family;

use super::{draw32, draw_f, int, round2, set, Draft, Generator, FULL_POWER};
use crate::scenario::Behaviour;

impl Generator {
    /// Twins with a second Byzantine agent: with probability `full_power.twins`, when the
    /// committee tolerates two faults, another agent runs `full-power` beside the twin.
    pub(super) fn twin_with_full_power(&self, fp: &mut ChaCha8Rng, d: &mut Draft, n: u32, twin: u32) {
        if (n - 1) / 3 < 2 || !fp.gen_bool(self.envelope.full_power.twins) {
            return;
        }
        let other = (twin + fp.gen_range(1..n)) % n;
        let mut agents = [(twin, Behaviour::Twin), (other, FULL_POWER)];
        agents.sort_unstable();
        set(&mut d.table, "byzantine.count", int(2));
        set(&mut d.table, "byzantine.agents", Value::Array(agents.iter().map(|(a, _)| int(u64::from(*a))).collect()));
        let names = agents.iter().map(|(_, b)| Value::String(b.name().into())).collect();
        set(&mut d.table, "byzantine.strategies", Value::Array(names));
        if let Some(Value::Table(byzantine)) = d.table.get_mut("byzantine") {
            byzantine.remove("strategy");
        }
        d.byzantine_count = 2;
        d.features.insert(format!("behaviour:{}", FULL_POWER.name()));
        d.features.insert("byzantine:mixed".into());
    }

    /// The knobs of the run's `full-power` agents, if it has any: rate, actions per input, and
    /// each family off with probability `full_power.off` (at least one stays on); `flood` on
    /// with probability `full_power.flood`, drawn last so that no earlier draw changes.
    pub(super) fn full_power_knobs(&self, fp: &mut ChaCha8Rng, d: &mut Draft) {
        if !d.features.contains(&format!("behaviour:{}", FULL_POWER.name())) {
            return;
        }
        let e = &self.envelope.full_power;
        let mut families: Vec<Family> = Family::ALL.into_iter().filter(|_| !fp.gen_bool(e.off)).collect();
        if families.is_empty() {
            families.extend(Family::ALL.choose(fp).copied());
        }
        let rate = round2(draw_f(fp, e.rate));
        let actions = draw32(fp, e.actions_per_input);
        if fp.gen_bool(e.flood) {
            families.push(Family::Flood);
        }
        let mut t = Table::new();
        t.insert("rate".into(), Value::Float(rate));
        t.insert("actions_per_input".into(), int(u64::from(actions)));
        t.insert("families".into(), Value::Array(families.iter().map(|f| Value::String(f.name().into())).collect()));
        set(&mut d.table, "byzantine.full_power", Value::Table(t));
        d.features.extend(families.iter().map(|f| format!("full-power:{}", f.name())));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Envelope, Generator, Mode};
    use super::*;

    /// The full-power agent comes from its own stream: turning it on changes who is Byzantine
    /// and how, and nothing else of a run; with `share = 1` every drawn behaviour is replaced
    /// (ByzzFuzz's mutated agent stays `honest`), and Twins runs of 7 agents get one.
    #[test]
    fn the_full_power_agent_changes_only_the_byzantine_agents() {
        let (mut off, mut on) = (Envelope::default(), Envelope::default());
        (off.full_power.share, off.full_power.twins) = (0.0, 0.0);
        (on.full_power.share, on.full_power.twins) = (1.0, 1.0);
        // The far-behind family skips runs with a full-power agent: keep it out of the comparison.
        (off.far_behind.share, on.far_behind.share) = (0.0, 0.0);
        let (off, on) = (Generator::new(off, 5, None, "none"), Generator::new(on, 5, None, "none"));
        let (mut replaced, mut beside_twins) = (0, 0);
        for i in 0..120 {
            let (a, b) = (off.generate(i).unwrap(), on.generate(i).unwrap());
            let (x, y) = (&a.scenario, &b.scenario);
            assert_eq!(
                (&x.agents, &x.network, &x.faults, &x.workload),
                (&y.agents, &y.network, &y.faults, &y.workload)
            );
            assert_eq!(
                (&x.protocol, &x.round_partitions, &x.tamper, a.seed),
                (&y.protocol, &y.round_partitions, &y.tamper, b.seed)
            );
            let behaviours = y.byzantine.behaviours();
            assert!(!behaviours.contains(&FULL_POWER) || !y.byzantine.full_power.families.is_empty());
            match a.mode {
                Mode::Twins if x.agents.count >= 7 => {
                    assert_eq!((y.byzantine.count, behaviours), (2, vec![FULL_POWER, Behaviour::Twin]));
                    beside_twins += 1;
                }
                Mode::Twins => assert_eq!(x.byzantine, y.byzantine),
                _ if x.byzantine.count > 0 => {
                    assert_eq!((x.byzantine.count, &x.byzantine.agents), (y.byzantine.count, &y.byzantine.agents));
                    assert!(
                        behaviours.iter().all(|b| *b == FULL_POWER || *b == Behaviour::Honest),
                        "run {i}: {behaviours:?}"
                    );
                    replaced += 1;
                }
                _ => assert_eq!(y.byzantine.count, 0),
            }
        }
        assert!(replaced > 20 && beside_twins > 3, "{replaced} replaced, {beside_twins} beside a twin");
    }
}
