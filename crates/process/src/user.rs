//! User lookup through the C library (and so NSS: files, LDAP, sssd, ...).
//!
//! The agent resolves a container's user before the launch and hands the supervisor plain
//! ids: the supervisor stays free of NSS, which lets it be linked statically, and a missing
//! user is reported before anything starts.

use std::ffi::{CStr, CString};

/// A user's ids: what `setgroups`, `setgid` and `setuid` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Supplementary groups, the primary group included.
    pub groups: Vec<libc::gid_t>,
}

/// Looks up a user by name, or by numeric uid when no passwd entry has that name.
///
/// A numeric uid without a passwd entry runs with gid = uid and no other groups, as a
/// container image's numeric `USER` does.
pub fn lookup_user(name: &str) -> Result<User, String> {
    let cname = CString::new(name).map_err(|_| format!("user '{name}' contains NUL"))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: passwd is plain data; all zeroes is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live buffer of the stated size; the reentrant lookup
    // writes only into them.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        if let Ok(uid) = name.parse::<libc::uid_t>() {
            return Ok(User {
                uid,
                gid: uid,
                groups: vec![uid],
            });
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up user '{name}': {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        return Err(format!("user '{name}' does not exist on this host"));
    }
    let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
    // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
    let pw_name: &CStr = unsafe { CStr::from_ptr(pwd.pw_name) };
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: pw_name is valid (see above); groups has room for n entries.
        let rc = unsafe { libc::getgrouplist(pw_name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return Ok(User { uid, gid, groups });
        }
        // Too small: n now holds the number needed.
        if n as usize <= groups.len() || n > 65536 {
            return Err(format!("cannot list the groups of user '{name}'"));
        }
        groups.resize(n as usize, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_zero_with_its_groups() {
        let root = lookup_user("root").expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{:?}", root.groups);
    }

    #[test]
    fn numeric_uid_without_an_entry() {
        let u = lookup_user("4000000").expect("numeric");
        assert_eq!(
            u,
            User {
                uid: 4000000,
                gid: 4000000,
                groups: vec![4000000]
            }
        );
    }

    #[test]
    fn unknown_name_says_so() {
        let e = lookup_user("no-such-user-here").unwrap_err();
        assert_eq!(e, "user 'no-such-user-here' does not exist on this host");
        assert!(lookup_user("a\0b").unwrap_err().contains("NUL"));
    }
}
