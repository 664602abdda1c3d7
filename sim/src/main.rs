//! `bftsim`: the command-line front end of the simulator. See the README's CLI section.

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
