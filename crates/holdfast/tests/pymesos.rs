//! pymesos (the Python Mesos library, from PyPI) against a real master and agent: a
//! framework built on its scheduler driver, and a custom executor built on its executor
//! driver. The scripts are in tests/pymesos/; tests/pymesos/setup.sh installs pymesos
//! into the venv these tests run them with.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::Master;
use support::{cgroup2, skip, Agent};

const REQUIRE: &str = "HOLDFAST_REQUIRE_PYMESOS";
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pymesos");

/// The venv's python, when setup.sh has made it (HOLDFAST_PYMESOS_VENV, as for setup.sh,
/// else target/pymesos-venv in the workspace).
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("HOLDFAST_PYMESOS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pymesos-venv"));
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import pymesos"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        Some(python)
    } else {
        skip(
            REQUIRE,
            &format!(
                "no pymesos at {} (run tests/pymesos/setup.sh)",
                python.display()
            ),
        );
        None
    }
}

/// A master, an agent registered with it, and the venv's python; None (skipped) when this
/// host lacks any of them.
fn cluster(agent_flags: &[&str]) -> Option<(Master, Agent, PathBuf)> {
    let python = venv_python()?;
    let Some(mount) = cgroup2() else {
        // cgroup2() follows HOLDFAST_REQUIRE_CGROUP2; asking for pymesos asks for this too.
        if std::env::var_os(REQUIRE).is_some() {
            panic!("{REQUIRE} is set but this host cannot run containers (see above)");
        }
        return None;
    };
    let master = Master::start(&[]);
    let mut flags = vec![format!("--master={}", master.addr())];
    flags.extend(agent_flags.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let agent = Agent::start(&mount, &flags);
    Some((master, agent, python))
}

/// How long a framework may take: the VM emulates its CPU and runs about 40x slower.
fn framework_timeout() -> Duration {
    if std::env::var_os("HOLDFAST_VM").is_some() {
        Duration::from_secs(1500)
    } else {
        Duration::from_secs(300)
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// framework.py's summary: its first line of output (a FAILED line may follow).
    fn summary(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

/// Runs framework.py to its end (it stops itself at its --timeout; killed a minute later).
fn run_framework(python: &Path, master: &Master, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("stdout");
    let err = dir.path().join("stderr");
    let timeout = framework_timeout();
    let mut child = Command::new(python)
        .arg(format!("{SCRIPTS}/framework.py"))
        .arg(format!("--master={}", master.addr()))
        .arg(format!("--timeout={}", timeout.as_secs()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("run framework.py");
    let deadline = Instant::now() + timeout + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for framework.py") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default()
            + if status.is_none() {
                "\n(killed: framework.py outlived its own timeout)"
            } else {
                ""
            },
    }
}

/// The count a summary line gives before `word` ("300 updates" -> 300 for "updates").
fn count(summary: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = summary
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| "(),;:".contains(c)))
        .collect();
    let at = words.iter().position(|w| *w == word)?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

fn diagnostics(run: &Run, master: &Master, agent: &Agent) -> String {
    format!(
        "framework stdout:\n{}\nframework stderr:\n{}\nagent log:\n{}\nmaster log:\n{}",
        run.stdout,
        run.stderr,
        agent.log(),
        master.log()
    )
}

#[test]
fn a_pymesos_framework_runs_a_hundred_command_tasks() {
    // Ten tasks of 0.1 cpus at a time: more at once overwhelm systemd in the (emulated)
    // VM, where scope creation then times out.
    let Some((master, agent, python)) = cluster(&["--resources=cpus:1;mem:2048"]) else {
        return;
    };
    let run = run_framework(&python, &master, &["--mode=command", "--tasks=100"]);
    assert!(run.success, "{}", diagnostics(&run, &master, &agent));
    // "command: F of N tasks finished in S.s; U updates (R repeated), O offers".
    let summary = run.summary();
    let n = |word: &str| count(summary, word).unwrap_or_else(|| panic!("no {word} in: {summary}"));
    assert_eq!((n("of"), n("tasks")), (100, 100), "{summary}");
    // STARTING, RUNNING and FINISHED for each task. The agent sends a task's next update
    // only once the previous one is acknowledged, so getting this far means pymesos
    // acknowledged them. An update may come twice when its acknowledgement takes longer
    // than the agent's 10 s retry (pymesos handles events one at a time, on one thread,
    // and the VM is slow): at-least-once delivery, counted apart.
    assert_eq!(n("updates") - n("repeated"), 300, "{summary}");
    // The agent holds ten tasks at a time, so the rest went out on later offers.
    assert!(n("offers") >= 10, "{summary}");
}

#[test]
fn a_pymesos_executor_runs_tasks_and_exchanges_messages() {
    let Some((master, agent, python)) = cluster(&["--resources=cpus:2;mem:1024"]) else {
        return;
    };
    let run = run_framework(&python, &master, &["--mode=executor", "--tasks=5"]);
    assert!(run.success, "{}", diagnostics(&run, &master, &agent));
    // "executor: F of N tasks finished in S.s; U updates (R repeated), O offers;
    // messages: M ready, A answered": each task said ready, was told to finish, answered.
    let summary = run.summary();
    let n = |word: &str| count(summary, word).unwrap_or_else(|| panic!("no {word} in: {summary}"));
    assert_eq!((n("of"), n("tasks")), (5, 5), "{summary}");
    assert_eq!(
        n("updates") - n("repeated"),
        10,
        "RUNNING and FINISHED each: {summary}"
    );
    assert_eq!((n("ready"), n("answered")), (5, 5), "{summary}");

    // The framework tore itself down; the agent shut the executor down and its sandbox
    // stays, with what pymesos's executor driver logged.
    let script = format!("{SCRIPTS}/executor.py");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Command::new("pgrep")
        .args(["-f", &script])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "the executor still runs after TEARDOWN\n{}",
            diagnostics(&run, &master, &agent)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sandboxes: Vec<PathBuf> = std::fs::read_dir(agent.work_dir().join("containers"))
        .expect("containers dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(sandboxes.len(), 1, "one executor: {sandboxes:?}");
    let log = std::fs::read_to_string(sandboxes[0].join("stderr")).unwrap_or_default();
    assert!(
        log.contains("registered: executor pymesos-executor of framework"),
        "executor stderr:\n{log}"
    );
    assert!(log.contains("shutting down"), "executor stderr:\n{log}");
}
