//! The agent's own descriptor budget: one pidfd per running container adds up.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limits as they were,
/// for the workloads (which should get what the host gives processes by default, not the
/// agent's raised limit: some programs iterate over every possible descriptor).
pub fn raise_nofile_limit() -> io::Result<libc::rlimit> {
    let mut original = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut original) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let raised = libc::rlimit {
        rlim_cur: original.rlim_max,
        rlim_max: original.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(original)
}

/// Grows this process's descriptor table to hold at least `n` descriptors, by duplicating
/// one to `n - 1` and closing it again (the table never shrinks).
///
/// Call it before any thread starts: growing the table of a multithreaded process waits
/// for an RCU grace period, which shows as a stall of tens of milliseconds in whatever
/// call opened the descriptor that crossed a power of two.
pub fn reserve_fd_table(n: i32) -> io::Result<()> {
    if n <= 1 {
        return Ok(());
    }
    // SAFETY: fcntl(F_DUPFD) only duplicates fd 0 (always open in the agent, /dev/null
    // at worst) to the lowest free descriptor >= n - 1, which we then close.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, n - 1) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created above and is owned by nothing else.
    unsafe { libc::close(fd) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_size() -> usize {
        // FDSize in /proc/self/status is the size of the descriptor table.
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn reserving_grows_the_table_and_leaves_no_descriptor_open() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into lim.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let n = 2048.min(lim.rlim_cur as i32);
        reserve_fd_table(n).expect("reserve");
        assert!(table_size() >= n as usize, "FDSize {}", table_size());
        // SAFETY: F_GETFD on a descriptor number only queries it.
        let flags = unsafe { libc::fcntl(n - 1, libc::F_GETFD) };
        assert!(flags < 0, "closed again");
    }
}
