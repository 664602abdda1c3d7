//! `bftsim-cluster`: scenario files run against real `bftsim-node` processes on 127.0.0.1.
//!
//! Jepsen's shape, on the simulator's scenario format: the harness starts one process per
//! agent ([`procs`]), puts a proxy it owns between every pair of nodes ([`proxy`]: partitions,
//! drops, delays, duplicates and clogs act on whole frames), drives the scenario's workload
//! through the HTTP API and records every client operation ([`client`]), applies the fault
//! timeline to the real processes (crash = SIGKILL, restart, pause = SIGSTOP, resume =
//! SIGCONT), and checks the simulator's invariants from the history and the nodes' answers
//! ([`check`]). Each run becomes one `runs.jsonl` record marked `real` ([`run`]).
//!
//! Why a crate of its own and not a `bftsim` subcommand: the simulator is built for madsim's
//! deterministic runtime (`--cfg madsim` replaces tokio's time and network), while the harness
//! needs real sockets, real time and real signals; it uses the simulator only as a library
//! (the scenario format, the record, the report's labels).

pub mod check;
pub mod client;
pub mod procs;
pub mod proxy;
pub mod run;
pub mod setup;
