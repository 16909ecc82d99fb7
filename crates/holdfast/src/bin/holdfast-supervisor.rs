//! `holdfast-supervisor <runtime dir>`: the per-container supervisor the agent starts.
//!
//! A binary of its own, apart from `holdfast`, so that each container pays only for the
//! supervisor's code: no async runtime, HTTP stack or argument parser is mapped into it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: holdfast-supervisor <runtime dir> (started by the holdfast agent)");
        return ExitCode::from(2);
    };
    let code = holdfast_supervisor::run::main(std::path::Path::new(&dir));
    ExitCode::from(code.clamp(0, 255) as u8)
}
