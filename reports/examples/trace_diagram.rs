//! Draws the space-time diagram of a `bftsim reproduce --trace FILE` trace:
//!
//! ```sh
//! bftsim reproduce scenarios/mut-no-locking.toml --seed 56 --trace trace.jsonl
//! cargo run -p reports --example trace_diagram -- trace.jsonl diagram.svg [SESSION]
//! ```
//!
//! (`bftsim explore` draws one for every finding the same way.)

use std::process::ExitCode;

use reports::spacetime::{from_trace_jsonl, render_svg};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: trace_diagram TRACE.jsonl OUT.svg [SESSION]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(input) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {input}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut diagram = from_trace_jsonl(&text, input);
    diagram.session = args.get(2).and_then(|s| s.parse().ok());
    if let Err(e) = std::fs::write(output, render_svg(&diagram)) {
        eprintln!("cannot write {output}: {e}");
        return ExitCode::from(2);
    }
    println!("wrote {output}: {} agents, {} events", diagram.agents.len(), diagram.events.len());
    ExitCode::SUCCESS
}
