//! The durable crate under seeded random crashes and faults on the simulated disk: what was
//! synced survives, what survives is a prefix of what was written, damage is refused, and the
//! opener never loses or reuses an acknowledged session.

mod journal;
mod opener;
