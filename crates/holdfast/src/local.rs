//! `holdfast local`: a master and an agent registered with it, in one process, with
//! defaults that work on one host as they are. The quickest way to a cluster:
//! `holdfast local`, then `holdfast execute --command 'echo hello'`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser};

use crate::flags::AgentFlags;
use crate::master::MasterFlags;

#[derive(Debug, Clone, Args)]
pub struct LocalFlags {
    /// Address both listen on.
    #[arg(long = "ip", default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// The master's port.
    #[arg(long = "port", default_value_t = 5050)]
    pub port: u16,
    /// The agent's port.
    #[arg(long = "agent_port", default_value_t = 5051)]
    pub agent_port: u16,
    /// State of both: `master/` and `agent/` below it.
    #[arg(long = "work_dir", default_value = "/var/lib/holdfast-local")]
    pub work_dir: PathBuf,
    /// The agent's runtime dir.
    #[arg(long = "runtime_dir", default_value = "/run/holdfast-local")]
    pub runtime_dir: PathBuf,
    /// What the agent offers (default: what the host has).
    #[arg(long = "resources")]
    pub resources: Option<String>,
    /// ERROR, WARNING, INFO or DEBUG.
    #[arg(long = "logging_level", default_value = "INFO")]
    pub logging_level: String,
    /// Any other agent flag, e.g. `--agent_flag=--isolation=cgroups/cpu` (repeatable).
    #[arg(long = "agent_flag")]
    pub agent_flags: Vec<String>,
}

#[derive(Parser)]
struct MasterCli {
    #[command(flatten)]
    flags: MasterFlags,
}

#[derive(Parser)]
#[command(args_override_self = true)]
struct AgentCli {
    #[command(flatten)]
    flags: AgentFlags,
}

/// The flags of each part: every one set explicitly, so `HOLDFAST_*` variables meant
/// for a standalone master or agent do not leak in.
fn parts(flags: &LocalFlags) -> anyhow::Result<(MasterFlags, AgentFlags)> {
    let master = MasterCli::try_parse_from([
        "master".to_owned(),
        format!("--ip={}", flags.ip),
        format!("--port={}", flags.port),
        format!("--work_dir={}", flags.work_dir.join("master").display()),
        format!("--logging_level={}", flags.logging_level),
    ])
    .context("master flags")?
    .flags;
    let master_ip = if flags.ip.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        flags.ip
    };
    let mut args = vec![
        "agent".to_owned(),
        format!("--ip={}", flags.ip),
        format!("--port={}", flags.agent_port),
        format!("--work_dir={}", flags.work_dir.join("agent").display()),
        format!("--runtime_dir={}", flags.runtime_dir.display()),
        format!(
            "--master={}",
            std::net::SocketAddr::new(master_ip, flags.port)
        ),
        // Apart from a standalone agent's containers on the same host.
        "--cgroups_root=holdfast-local".to_owned(),
        "--systemd_containers_slice=holdfast_local.slice".to_owned(),
        format!("--logging_level={}", flags.logging_level),
    ];
    if let Some(r) = &flags.resources {
        args.push(format!("--resources={r}"));
    }
    args.extend(flags.agent_flags.iter().cloned());
    let agent = AgentCli::try_parse_from(args)
        .map_err(|e| anyhow::anyhow!("agent flags: {e}"))?
        .flags;
    Ok((master, agent))
}

pub fn run(flags: LocalFlags) -> anyhow::Result<ExitCode> {
    crate::agent::init_logging(&flags.logging_level);
    let (master, agent) = parts(&flags)?;
    std::fs::create_dir_all(&master.work_dir)
        .with_context(|| format!("cannot create {}", master.work_dir.display()))?;
    let (cfg, cluster) = crate::agent::prepare(&agent)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let master = tokio::spawn(crate::master::serve(master));
        let agent = tokio::spawn(crate::agent::serve(agent, cfg, cluster));
        // Both stop on SIGTERM or SIGINT; the first error stops the process.
        let (m, a) = tokio::join!(master, agent);
        m.context("the master task failed")??;
        a.context("the agent task failed")?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(args: &[&str]) -> LocalFlags {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            f: LocalFlags,
        }
        Cli::try_parse_from(std::iter::once("local").chain(args.iter().copied()))
            .expect("flags")
            .f
    }

    #[test]
    fn the_agent_registers_with_the_master_next_to_it() {
        let (m, a) = parts(&local(&[
            "--port=6050",
            "--agent_port=6051",
            "--work_dir=/srv/hf",
        ]))
        .expect("parts");
        assert_eq!(m.port, 6050);
        assert_eq!(m.work_dir, PathBuf::from("/srv/hf/master"));
        assert_eq!(a.port, 6051);
        assert_eq!(a.master.as_deref(), Some("127.0.0.1:6050"));
        assert_eq!(a.work_dir, PathBuf::from("/srv/hf/agent"));
        assert_eq!(a.cgroups_root, PathBuf::from("holdfast-local"));
        let (_, a) = parts(&local(&[
            "--agent_flag=--cgroups_root=other",
            "--resources=cpus:1",
        ]))
        .expect("parts");
        assert_eq!(a.cgroups_root, PathBuf::from("other"), "agent flags win");
        assert_eq!(a.resources.as_deref(), Some("cpus:1"));
        let e = parts(&local(&["--agent_flag=--no-such-flag"])).unwrap_err();
        assert!(format!("{e:#}").contains("no-such-flag"), "{e:#}");
    }
}
