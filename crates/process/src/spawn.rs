//! Starting a process directly inside a cgroup.
//!
//! `clone3(CLONE_INTO_CGROUP)` places the child in its cgroup atomically, so not even the
//! first instruction of the child runs in the agent's cgroup. Kernels without it (before
//! 5.7) get `fork` and the child writes itself into `cgroup.procs` before `exec`.
//!
//! Between clone and exec the child runs in a copy of a multi-threaded parent, so it only
//! makes raw system calls on data prepared beforehand: no allocation, no locks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::last_error;
use crate::pidfd::PidFd;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `linux/sched.h` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub struct SpawnRequest<'a> {
    pub program: &'a CStr,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    /// Directory fd of the cgroup the child starts in.
    pub cgroup: BorrowedFd<'a>,
    /// `cgroup.procs` of the same cgroup, opened for writing: the fallback path's way in.
    pub cgroup_procs: BorrowedFd<'a>,
    /// `(source, target)` pairs dup2'ed in the child; every other fd is close-on-exec.
    pub fds: &'a [(RawFd, RawFd)],
    /// Start a new session (and process group) so signals to the caller's group miss it.
    pub new_session: bool,
}

#[derive(Debug)]
pub struct Spawned {
    pub pidfd: PidFd,
    /// Whether the kernel placed the child with `CLONE_INTO_CGROUP`.
    pub into_cgroup: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("failed to create the spawn status pipe")]
    Pipe(#[source] io::Error),
    #[error("clone3 failed")]
    Clone(#[source] io::Error),
    #[error("fork failed")]
    Fork(#[source] io::Error),
    #[error("child failed to {stage} before exec")]
    Child {
        stage: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the spawn status pipe")]
    StatusRead(#[source] io::Error),
}

/// What failed in the child, sent over the status pipe as (stage, errno).
const STAGES: [&str; 5] = [
    "join its cgroup",
    "start a new session",
    "set up its file descriptors",
    "reset its signal mask",
    "exec",
];

/// Whether this kernel accepts `clone3` with `CLONE_INTO_CGROUP` (probed by `doctor`).
pub fn clone_into_cgroup_supported(cgroup: BorrowedFd<'_>) -> bool {
    // An invalid combination that the kernel rejects after checking the flag: a probe that
    // never creates a process. EINVAL for the bogus exit signal means the flag was known;
    // ENOSYS or E2BIG mean clone3 or the cgroup field is missing.
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: 0xffff,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 with an invalid exit signal fails before creating a child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // Cannot happen (the kernel refuses the exit signal); never continue as a child.
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(127) };
    }
    if ret > 0 {
        return true;
    }
    last_error().raw_os_error() == Some(libc::EINVAL)
}

/// Spawns `program` in the cgroup and returns its pidfd once `exec` has succeeded.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let mut argv: Vec<*const libc::c_char> = req.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = req.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let (status_read, status_write) = pipe_cloexec().map_err(SpawnError::Pipe)?;
    let child = ChildPlan {
        program: req.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cgroup_procs: req.cgroup_procs.as_raw_fd(),
        fds: req.fds,
        new_session: req.new_session,
        status: status_write.as_raw_fd(),
    };

    let mut pidfd_raw: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd_raw as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: req.cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork; the child only runs `child.run`,
    // which makes raw syscalls on memory prepared above and never returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let (pidfd, into_cgroup) = if ret == 0 {
        child.run(false)
    } else if ret > 0 {
        // SAFETY: CLONE_PIDFD stored a fresh fd that only we own.
        let fd = unsafe { OwnedFd::from_raw_fd(pidfd_raw) };
        (PidFd::from_owned(fd, ret as i32), true)
    } else {
        let err = last_error();
        match err.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL) => {}
            _ => return Err(SpawnError::Clone(err)),
        }
        // SAFETY: as above, the child only runs `child.run`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SpawnError::Fork(last_error()));
        }
        if pid == 0 {
            child.run(true)
        }
        // Our unreaped child: its pid cannot be reused before we wait for it.
        let pidfd = PidFd::open(pid).map_err(SpawnError::Fork)?;
        (pidfd, false)
    };
    drop(status_write);

    // EOF means exec succeeded (the pipe is close-on-exec); otherwise the child sent
    // (stage, errno) and exited.
    let mut buf = [0u8; 8];
    let n = read_full(&status_read, &mut buf).map_err(SpawnError::StatusRead)?;
    if n == 8 {
        let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        // Reap the failed child so it leaves no zombie.
        let _ = wait_blocking(&pidfd);
        return Err(SpawnError::Child {
            stage: STAGES.get(stage).copied().unwrap_or("start"),
            source: io::Error::from_raw_os_error(errno),
        });
    }
    Ok(Spawned { pidfd, into_cgroup })
}

struct ChildPlan<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cgroup_procs: RawFd,
    fds: &'a [(RawFd, RawFd)],
    new_session: bool,
    status: RawFd,
}

impl ChildPlan<'_> {
    fn run(&self, join_cgroup: bool) -> ! {
        // SAFETY: every call below is async-signal-safe and uses memory prepared by the
        // parent before the clone; the process exits or execs at the end.
        unsafe {
            if join_cgroup && libc::write(self.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
                self.fail(0);
            }
            if self.new_session && libc::setsid() < 0 {
                self.fail(1);
            }
            for &(src, dst) in self.fds {
                if src == dst {
                    // dup2 onto itself keeps close-on-exec: clear it explicitly.
                    if libc::fcntl(src, libc::F_SETFD, 0) < 0 {
                        self.fail(2);
                    }
                } else if libc::dup2(src, dst) < 0 {
                    self.fail(2);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
                self.fail(3);
            }
            libc::execve(self.program, self.argv, self.envp);
            self.fail(4);
        }
    }

    fn fail(&self, stage: u32) -> ! {
        // SAFETY: errno read and raw write/_exit are async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&stage.to_ne_bytes());
            buf[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(self.status, buf.as_ptr().cast(), buf.len());
            libc::_exit(127);
        }
    }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: a valid array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last_error());
    }
    // SAFETY: pipe2 returned two fresh fds that only we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reading into the unfilled tail of a valid buffer.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r < 0 {
            let err = last_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if r == 0 {
            break;
        }
        n += r as usize;
    }
    Ok(n)
}

fn wait_blocking(pidfd: &PidFd) -> io::Result<()> {
    // SAFETY: siginfo_t is plain data; zeroed is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: blocking waitid on our own child's pidfd.
    let ret = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        )
    };
    if ret < 0 {
        return Err(last_error());
    }
    Ok(())
}
