//! Writes the report of a result directory without building the simulator (handy when working
//! on the report itself): `cargo run -p reports --example report -- DIR [OUT]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some(input) = args.first() else {
        eprintln!("usage: report DIR [OUT]");
        return ExitCode::from(2);
    };
    let out = args.get(1).unwrap_or(input);
    match reports::generate(input, out, &reports::ReportOptions::default()) {
        Ok(output) => {
            println!("wrote {} and {}", output.html.display(), output.markdown.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
