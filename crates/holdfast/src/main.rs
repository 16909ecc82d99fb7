//! `holdfast`: the agent and its tools. Each container's supervisor is a separate, small
//! binary (`holdfast-supervisor`, in `src/bin`).

mod agent;
mod doctor;
mod execute;
mod flags;
mod local;
mod master;

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
    Agent(Box<flags::AgentFlags>),
    /// Run the master: frameworks subscribe to it and agents register with it.
    #[command(args_override_self = true)]
    Master(Box<master::MasterFlags>),
    /// Report what this host supports and what would not be enforced.
    Doctor(doctor::DoctorFlags),
    /// Run a master and an agent registered with it, in one process: a cluster of one.
    Local(local::LocalFlags),
    /// Run one command as a task through a master, print its state changes and exit
    /// with its exit status.
    Execute(execute::ExecuteFlags),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(f) => agent::run(*f),
        Command::Master(f) => master::run(*f),
        Command::Doctor(f) => doctor::run(f),
        Command::Execute(f) => execute::run(f),
        Command::Local(f) => local::run(f),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("holdfast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
