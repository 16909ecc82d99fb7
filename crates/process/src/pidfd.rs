//! Owned pidfds: a handle on one process that a reused pid can never redirect.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::last_error;

#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: i32,
}

impl PidFd {
    /// Opens a pidfd for `pid` (`pidfd_open`). Callers that adopt a process check its start
    /// time *after* this call, so the fd cannot refer to a successor.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if ret < 0 {
            return Err(last_error());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(ret as RawFd) };
        Ok(PidFd { fd, pid })
    }

    pub(crate) fn from_owned(fd: OwnedFd, pid: i32) -> PidFd {
        PidFd { fd, pid }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True once the process has exited (the pidfd polls readable).
    pub fn has_exited(&self) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ret < 0 {
            return Err(last_error());
        }
        Ok(ret > 0)
    }

    /// Sends `signal` to the process (`pidfd_send_signal`). ESRCH means it is gone.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Reaps the process if it is our child and has exited, returning its wait status.
    /// `Ok(None)`: still running, or not our child (someone else reaps it).
    pub fn try_reap(&self) -> io::Result<Option<i32>> {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: P_PIDFD with our fd and a valid siginfo pointer.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.fd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if ret < 0 {
            let err = last_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Ok(None);
            }
            return Err(err);
        }
        // SAFETY: waitid filled the union's sigchld view when it returned a child.
        let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        Ok(Some(wait_status_from_siginfo(code, status)))
    }
}

/// Rebuilds the wait(2) status word from waitid's `si_code`/`si_status`.
pub fn wait_status_from_siginfo(code: i32, status: i32) -> i32 {
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status,
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_encoding_matches_wait2() {
        assert_eq!(wait_status_from_siginfo(libc::CLD_EXITED, 7), 1792);
        assert_eq!(wait_status_from_siginfo(libc::CLD_KILLED, 9), 9);
        assert_eq!(wait_status_from_siginfo(libc::CLD_DUMPED, 11), 139);
    }

    #[test]
    // The child is reaped through the pidfd, not through `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn pidfd_follows_a_child() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pidfd = PidFd::open(child.id() as i32).expect("pidfd_open");
        assert!(!pidfd.has_exited().expect("poll"));
        pidfd.send_signal(libc::SIGKILL).expect("signal");
        for _ in 0..200 {
            if pidfd.has_exited().expect("poll") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(pidfd.has_exited().expect("poll"));
        assert_eq!(pidfd.try_reap().expect("reap"), Some(9));
    }
}
