//! `holdfast`: one binary for every role. The hidden supervisor mode is entered before
//! anything else happens (no runtime, no logging setup), which keeps supervisors small.

mod agent;
mod doctor;
mod flags;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "holdfast",
    version,
    about = "A cluster resource manager for cgroup v2 hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: launch and hold on to containers on this host.
    // As with Mesos flags, a later occurrence of a flag overrides an earlier one.
    #[command(args_override_self = true)]
    Agent(flags::AgentFlags),
    /// Report what this host supports and what would not be enforced.
    Doctor(doctor::DoctorFlags),
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new("__supervise")) {
        let Some(dir) = args.next() else {
            eprintln!("usage: holdfast __supervise <runtime dir>");
            return std::process::ExitCode::from(2);
        };
        let code = holdfast_supervisor::run::main(std::path::Path::new(&dir));
        return std::process::ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(f) => agent::run(f),
        Command::Doctor(f) => doctor::run(f),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("holdfast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
