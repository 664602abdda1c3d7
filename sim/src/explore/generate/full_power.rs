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
    /// each family off with probability `full_power.off` (at least one stays on).
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
        let mut t = Table::new();
        t.insert("rate".into(), Value::Float(rate));
        t.insert("actions_per_input".into(), int(u64::from(actions)));
        t.insert("families".into(), Value::Array(families.iter().map(|f| Value::String(f.name().into())).collect()));
        set(&mut d.table, "byzantine.full_power", Value::Table(t));
        d.features.extend(families.iter().map(|f| format!("full-power:{}", f.name())));
    }
}
