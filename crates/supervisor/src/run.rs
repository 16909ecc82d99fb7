//! The supervisor's main loop.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_checkpoint::records::{now_secs, VERSION};
use holdfast_checkpoint::{ExitRecord, RuntimeStore, SupervisorRecord};
use holdfast_process::ProcessIdentity;

use crate::spec::{SupervisorSpec, GO_FD, READY_FD, SPEC_VERSION};

/// Runs the supervisor for the runtime dir `dir`; returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    // SAFETY: F_GETFD only queries whether fd 3 is open.
    let ready = if unsafe { libc::fcntl(READY_FD, libc::F_GETFD) } >= 0 {
        // The workload must not inherit it, or the agent would wait for its exit to see
        // the pipe close.
        // SAFETY: setting close-on-exec on an open fd.
        unsafe { libc::fcntl(READY_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: the agent passed fd 3 to us; nothing else in this process owns it.
        Some(unsafe { File::from_raw_fd(READY_FD) })
    } else {
        None
    };
    let mut ready = Ready(ready);
    let spec = match load_spec(dir) {
        Ok(spec) => spec,
        Err(e) => {
            ready.fail(&e);
            return 1;
        }
    };
    if let Err(e) = wait_for_go() {
        // The agent gave up on this launch (or died) before placing us: run nothing.
        eprintln!("holdfast-supervisor: no go from the agent ({e}); nothing was started");
        return 1;
    }
    let supervisor = match Supervisor::start(dir, &spec) {
        Ok(s) => s,
        Err(e) => {
            ready.fail(&e);
            return 1;
        }
    };
    ready.ok();
    supervisor.run(dir, &spec)
}

/// Waits for the agent's go on [`GO_FD`] when it passed one; an error if the pipe closed.
fn wait_for_go() -> io::Result<()> {
    // SAFETY: F_GETFD only queries whether the fd is open.
    if unsafe { libc::fcntl(GO_FD, libc::F_GETFD) } < 0 {
        return Ok(());
    }
    // SAFETY: the agent passed this fd to us; nothing else in this process owns it, and
    // the File closes it before the workload starts.
    let mut go = unsafe { File::from_raw_fd(GO_FD) };
    let mut byte = [0u8; 1];
    loop {
        match go.read(&mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::other("the go pipe closed")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

struct Ready(Option<File>);

impl Ready {
    fn ok(&mut self) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(b"ok\n");
        }
    }
    fn fail(&mut self, reason: &str) {
        let line = format!("error: {}\n", reason.replace('\n', " "));
        match self.0.take() {
            Some(mut f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => eprint!("{line}"),
        }
    }
}

fn load_spec(dir: &Path) -> Result<SupervisorSpec, String> {
    let path = RuntimeStore::spec_path(dir);
    let data = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let spec: SupervisorSpec = serde_json::from_slice(&data)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    if spec.version != SPEC_VERSION {
        return Err(format!(
            "spec version {} is not supported (expected {SPEC_VERSION})",
            spec.version
        ));
    }
    Ok(spec)
}

struct Supervisor {
    signals: OwnedFd,
    workload: i32,
}

/// Signals the supervisor takes through its signalfd instead of their default action.
const HANDLED: [i32; 6] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
];

impl Supervisor {
    fn start(dir: &Path, spec: &SupervisorSpec) -> Result<Supervisor, String> {
        // SAFETY: plain prctl calls on this process.
        unsafe {
            // Daemons that the workload double-forks are reparented to us and reaped here.
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            libc::prctl(libc::PR_SET_NAME, c"holdfast-sup".as_ptr(), 0, 0, 0);
        }
        let signals = block_signals().map_err(|e| format!("cannot set up signalfd: {e}"))?;
        // With memory.oom.group the kernel kills every process of the container on an OOM
        // except those at -1000: the supervisor survives to record the exit status, and
        // the workload gets back the score the supervisor inherited.
        let inherited_oom_score = protect_from_oom_killer();
        let user = spec.user.clone();
        let open_log = |name: &str| -> Result<File, String> {
            let path = spec.sandbox.join(name);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            if let Some(u) = &user {
                std::os::unix::fs::fchown(&f, Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
            }
            Ok(f)
        };
        let stdout = open_log("stdout")?;
        let stderr = open_log("stderr")?;

        let mut cmd = Command::new(&spec.program);
        if let Some((argv0, rest)) = spec.argv.split_first() {
            cmd.arg0(argv0).args(rest);
        }
        cmd.env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.sandbox)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let rlimits: Vec<(i32, libc::rlimit)> = spec
            .rlimits
            .iter()
            .map(|r| {
                let lim = |v: Option<u64>| v.unwrap_or(libc::RLIM_INFINITY);
                (
                    r.resource,
                    libc::rlimit {
                        rlim_cur: lim(r.soft),
                        rlim_max: lim(r.hard),
                    },
                )
            })
            .collect();
        let oom_score: Option<Vec<u8>> = inherited_oom_score.map(String::into_bytes);
        // SAFETY: the closure only makes async-signal-safe system calls on data prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // Its own session and process group: a workload that signals its group
                // (killpg(0)) reaches neither the supervisor nor the agent.
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(score) = &oom_score {
                    // Raising the score back needs no privilege, so this cannot fail for
                    // lack of it; a failure would leave the workload unkillable by the
                    // OOM killer, so it must stop the launch.
                    let fd = libc::open(
                        c"/proc/self/oom_score_adj".as_ptr(),
                        libc::O_WRONLY | libc::O_CLOEXEC,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let n = libc::write(fd, score.as_ptr().cast(), score.len());
                    libc::close(fd);
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (resource, lim) in &rlimits {
                    if libc::setrlimit(*resource as libc::__rlimit_resource_t, lim) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // The supervisor blocks the signals it reads through its signalfd, and a
                // blocked mask survives exec: without this the workload could not be
                // stopped by SIGTERM (or interrupted at all).
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(u) = &user {
                    if libc::setgroups(u.groups.len(), u.groups.as_ptr()) < 0
                        || libc::setgid(u.gid) < 0
                        || libc::setuid(u.uid) < 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start '{}': {e}", spec.program))?;
        let workload = child.id() as i32;
        // The child is reaped with waitpid in the loop, not through `Child`.
        drop(child);

        let me = ProcessIdentity::of(std::process::id() as i32)
            .map_err(|e| format!("cannot read own start time: {e}"))?;
        // A workload that already exited still has its start time while it is a zombie.
        let work = ProcessIdentity::of(workload)
            .map_err(|e| format!("cannot read the workload's start time: {e}"))?;
        let record = SupervisorRecord {
            version: VERSION,
            pid: me.pid,
            start_time: me.start_time,
            workload_pid: work.pid,
            workload_start_time: work.start_time,
        };
        RuntimeStore::save_supervisor(dir, &record).map_err(|e| error_chain(&e))?;
        Ok(Supervisor { signals, workload })
    }

    fn run(self, dir: &Path, spec: &SupervisorSpec) -> i32 {
        let grace = Duration::from_secs_f64(spec.grace_period_secs.max(0.0));
        let mut deadline: Option<Instant> = None;
        let status = loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                // Grace period over: the whole group, and any stragglers in the cgroup.
                // SAFETY: signals to our own workload's process group.
                unsafe { libc::killpg(self.workload, libc::SIGKILL) };
                if let Some(status) = kill_leaf_except_self(&spec.leaf_cgroup, self.workload) {
                    break status;
                }
                deadline = Some(Instant::now() + Duration::from_secs(3600));
            }
            match self.next_signal(timeout) {
                Some(libc::SIGTERM) if deadline.is_none() => {
                    // SAFETY: a signal to our own workload's process group.
                    unsafe { libc::killpg(self.workload, libc::SIGTERM) };
                    deadline = Some(Instant::now() + grace);
                }
                Some(libc::SIGCHLD) => {
                    if let Some(status) = reap(self.workload) {
                        break status;
                    }
                }
                _ => {}
            }
        };
        let exit = ExitRecord {
            version: VERSION,
            wait_status: status,
            exited_at: now_secs(),
            oom: spec.leaf_cgroup.parent().and_then(crate::oom_evidence),
        };
        let code = match RuntimeStore::save_exit(dir, &exit) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("holdfast-sup: {}", error_chain(&e));
                1
            }
        };
        // The container ends with its main process, as in Mesos: nothing it left behind
        // may keep running (the agent's destroy will find an empty cgroup).
        kill_leaf_except_self(&spec.leaf_cgroup, self.workload);
        code
    }

    /// Waits for the next signal; `None` on timeout.
    fn next_signal(&self, timeout: Option<Duration>) -> Option<i32> {
        let mut pfd = libc::pollfd {
            fd: self.signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return None;
        }
        // SAFETY: signalfd_siginfo is plain data; zeroed is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one siginfo record into a buffer of its size.
        let r = unsafe {
            libc::read(
                self.signals.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (r as usize == size).then_some(info.ssi_signo as i32)
    }
}

/// Reaps every exited child; returns the workload's wait status if it was among them.
fn reap(workload: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: non-blocking wait for any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == workload {
            found = Some(status);
        }
    }
}

fn block_signals() -> io::Result<OwnedFd> {
    // SAFETY: building and installing a signal mask; signalfd returns a new fd we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// SIGKILLs every process of the leaf cgroup but this one, and reaps what was ours.
/// Returns the workload's wait status if it was reaped here.
fn kill_leaf_except_self(leaf: &Path, workload: i32) -> Option<i32> {
    let me = std::process::id() as i32;
    let procs = leaf.join("cgroup.procs");
    let mut status = None;
    for _ in 0..200 {
        let Ok(text) = std::fs::read_to_string(&procs) else {
            break;
        };
        let others: Vec<i32> = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p| p != me)
            .collect();
        if others.is_empty() {
            break;
        }
        for pid in others {
            // SAFETY: these pids are in our own container's leaf cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        status = status.or(reap(workload));
        std::thread::sleep(Duration::from_millis(2));
        status = status.or(reap(workload));
    }
    status.or(reap(workload))
}

/// Sets this process's `oom_score_adj` to -1000 and returns the value it had, or `None`
/// when it could not be changed (then there is nothing to restore either).
fn protect_from_oom_killer() -> Option<String> {
    const PATH: &str = "/proc/self/oom_score_adj";
    let before = std::fs::read_to_string(PATH).ok()?;
    match std::fs::write(PATH, "-1000") {
        Ok(()) => Some(before.trim().to_string()),
        Err(e) => {
            eprintln!("holdfast-supervisor: cannot protect itself from the OOM killer: {e}");
            None
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
