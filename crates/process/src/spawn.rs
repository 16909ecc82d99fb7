//! Starting a process directly inside a cgroup.
//!
//! `clone3(CLONE_INTO_CGROUP)` places the child in its cgroup atomically, so not even the
//! first instruction of the child runs in the agent's cgroup. Kernels without it (before
//! 5.7) get `fork` and the child writes itself into `cgroup.procs` before `exec`.
//!
//! On x86_64 the child shares the parent's memory until it execs (`CLONE_VM |
//! CLONE_VFORK`, what `posix_spawn` does) and runs on a small stack of its own: the kernel
//! then copies no page tables, which in a large agent costs more than the exec. Elsewhere
//! the clone is fork-like.
//!
//! Between clone and exec the child runs in (a copy of) a multi-threaded parent, so it only
//! makes raw system calls on data prepared beforehand: no allocation, no locks. Signals stay
//! blocked around the clone, and the child resets caught signals to their default before it
//! unblocks them, so no handler of the parent ever runs in the child.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::last_error;
use crate::pidfd::PidFd;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// The child's stack in vfork mode: it only makes a handful of calls before exec.
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 256 * 1024;

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
    /// `(source, target)` pairs dup2'ed in the child. Every other descriptor is closed
    /// at exec, including any the caller inherited without close-on-exec.
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
    #[error("failed to map the child's stack")]
    Stack(#[source] io::Error),
}

/// What failed in the child, sent over the status pipe as (stage, errno).
const STAGES: [&str; 6] = [
    "join its cgroup",
    "start a new session",
    "set up its file descriptors",
    "reset its signal mask",
    "exec",
    "reset its signal handlers",
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
        first_unlisted: req
            .fds
            .iter()
            .map(|&(_, dst)| dst + 1)
            .max()
            .unwrap_or(0)
            .max(3),
    };

    // No signal handler of ours may run in the child (in vfork mode it would run on our
    // memory): block everything around the clone; the child unblocks after resetting.
    let _mask = BlockedSignals::all();
    let (pidfd, into_cgroup) = match clone_into_cgroup(req, &child)? {
        Some(pidfd) => (pidfd, true),
        None => {
            // SAFETY: as in `clone_into_cgroup`, the child only runs `child.run`.
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
        }
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

/// `clone3(CLONE_INTO_CGROUP)`; `None` when this kernel lacks it, for the fork fallback.
fn clone_into_cgroup(
    req: &SpawnRequest<'_>,
    child: &ChildPlan<'_>,
) -> Result<Option<PidFd>, SpawnError> {
    let mut pidfd_raw: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd_raw as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: req.cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    let ret = clone3(&mut args, child)?;
    if ret > 0 {
        // SAFETY: CLONE_PIDFD stored a fresh fd that only we own.
        let fd = unsafe { OwnedFd::from_raw_fd(pidfd_raw) };
        return Ok(Some(PidFd::from_owned(fd, ret as i32)));
    }
    let err = last_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL) => Ok(None),
        _ => Err(SpawnError::Clone(err)),
    }
}

/// Runs clone3 in vfork mode: the child runs `child.run` on a stack of its own, sharing our
/// memory, and we resume once it has exec'ed or exited. Returns the raw syscall result.
#[cfg(target_arch = "x86_64")]
fn clone3(args: &mut CloneArgs, child: &ChildPlan<'_>) -> Result<isize, SpawnError> {
    let stack = ChildStack::map().map_err(SpawnError::Stack)?;
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    args.stack = stack.base as u64;
    args.stack_size = stack.len as u64;
    let ret: isize;
    // SAFETY: the parent only gets the syscall's result back. The child starts on the
    // top of `stack` (16-byte aligned, as a call expects) with our registers, calls
    // `child_main(child)` and never returns; we are suspended until it execs or exits, so
    // `child` and `stack` outlive its use of them.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child as *const ChildPlan<'_>,
            in("r13") child_main as extern "C" fn(*const ChildPlan<'_>) -> !,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        // The raw syscall returns -errno; make it the thread's error like libc would.
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = (-ret) as i32 };
        return Ok(-1);
    }
    Ok(ret)
}

/// Runs clone3 fork-like, where there is no vfork-mode trampoline for this architecture.
#[cfg(not(target_arch = "x86_64"))]
fn clone3(args: &mut CloneArgs, child: &ChildPlan<'_>) -> Result<isize, SpawnError> {
    // SAFETY: clone3 without CLONE_VM behaves like fork; the child only runs `child.run`,
    // which makes raw syscalls on memory prepared beforehand and never returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        child.run(false)
    }
    Ok(ret as isize)
}

#[cfg(target_arch = "x86_64")]
extern "C" fn child_main(child: *const ChildPlan<'_>) -> ! {
    // SAFETY: the parent passed a plan that lives until we exec or exit.
    unsafe { (*child).run(false) }
}

/// The vfork-mode child's stack, with a guard page below it.
#[cfg(target_arch = "x86_64")]
struct ChildStack {
    map: *mut libc::c_void,
    base: *mut u8,
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl ChildStack {
    fn map() -> io::Result<ChildStack> {
        let page = 4096;
        let total = CHILD_STACK + page;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_error());
        }
        let stack = ChildStack {
            map,
            // SAFETY: within the mapping.
            base: unsafe { map.cast::<u8>().add(page) },
            len: CHILD_STACK,
        };
        // SAFETY: the lowest page of our own mapping becomes the guard.
        if unsafe { libc::mprotect(map, page, libc::PROT_NONE) } < 0 {
            return Err(last_error());
        }
        Ok(stack)
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used: the child has exec'ed or exited.
        unsafe { libc::munmap(self.map, self.len + 4096) };
    }
}

/// Blocks every signal in this thread until dropped.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn all() -> BlockedSignals {
        // SAFETY: sigset_t is plain data; the calls fill and apply it.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            BlockedSignals(old)
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

struct ChildPlan<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cgroup_procs: RawFd,
    fds: &'a [(RawFd, RawFd)],
    new_session: bool,
    status: RawFd,
    /// Descriptors from here up are made close-on-exec in the child.
    first_unlisted: RawFd,
}

/// The soft limit on descriptors, read with the raw syscall (the child may call it):
/// no descriptor can be at or above it.
fn fd_limit() -> RawFd {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 on this process, reading into a valid rlimit.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            libc::RLIMIT_NOFILE,
            std::ptr::null::<libc::rlimit>(),
            &mut lim as *mut libc::rlimit,
        )
    };
    if rc < 0 {
        return 1024;
    }
    RawFd::try_from(lim.rlim_cur).unwrap_or(RawFd::MAX)
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
            // A descriptor the agent inherited without close-on-exec (from a shell, a
            // process manager, a profiler) must not reach the container: the supervisor
            // reads meaning into fd 4, and a workload has no business with any of them.
            if libc::syscall(
                libc::SYS_close_range,
                self.first_unlisted as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) < 0
            {
                // Kernels before 5.11: one descriptor at a time (EBADF for the unused).
                for fd in self.first_unlisted..fd_limit() {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            // Caught signals go back to their default (exec would do the same) before
            // they are unblocked, so none of the parent's handlers can run here.
            for sig in 1..libc::SIGRTMAX() {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) < 0 {
                    // Not a signal that can be queried (SIGKILL, SIGSTOP, glibc's own).
                    continue;
                }
                if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    if libc::sigaction(sig, &dfl, std::ptr::null_mut()) < 0 {
                        self.fail(5);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_descriptor_limit_is_the_soft_rlimit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to an rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(
            fd_limit(),
            RawFd::try_from(lim.rlim_cur).unwrap_or(RawFd::MAX)
        );
    }
}
