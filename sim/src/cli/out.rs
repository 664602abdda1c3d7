//! Standard output that a closed pipe cannot crash.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`bftsim list | head -1`):
//! Rust ignores SIGPIPE, so the write returns `BrokenPipe` and the macro turns it into a panic
//! (exit 101 and a backtrace). Restoring the default SIGPIPE action would need `unsafe` (the
//! workspace forbids it) and would kill the process at its first print after the pipe closed,
//! before `run` writes `summary.json`. Instead every subcommand prints through [`outln!`] and
//! [`out!`]: a failed write to stdout marks stdout closed, later output is dropped, and the
//! command finishes its work (files, verdict) and exits with its usual code. Long printing loops
//! ask [`is_closed`] to stop early.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to stdout unless stdout is closed; any write error closes it.
pub fn write(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_fmt(args).and_then(|()| stdout.flush()).is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether a write to stdout has failed (the reader has gone): nothing more will be shown.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `print!` that never panics: see the module documentation.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::write(format_args!($($arg)*)) };
}

/// `println!` that never panics: see the module documentation.
macro_rules! outln {
    () => { $crate::cli::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
