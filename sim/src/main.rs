//! `bftsim`: the command-line front end of the simulator. See docs/cli.md.

/// mimalloc instead of the system allocator: a simulated run allocates and frees small objects
/// (messages, frames, tasks) at a high rate, which glibc's malloc spends about a quarter of the
/// run in. mimalloc's per-thread heaps also keep the worker threads from contending. It is
/// initialised outside any simulation and never draws from madsim's random source, so it does
/// not affect determinism (`bftsim run --check-determinism` and the thread-count tests check).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "bftsim was built without `--cfg madsim`, so it cannot run deterministic simulations.\n\
         The workspace's .cargo/config.toml sets that flag; an exported RUSTFLAGS overrides it.\n\
         Fix: `unset RUSTFLAGS` (or add `--cfg madsim` to it) and rebuild with `cargo build --release`."
    );
    std::process::ExitCode::from(2)
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
mod cli;
