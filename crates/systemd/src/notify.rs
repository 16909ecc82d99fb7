//! sd_notify: status datagrams to the service manager.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (newline-separated assignments such as `"READY=1\nSTATUS=serving"`) to
/// the service manager through `$NOTIFY_SOCKET`, like sd_notify. Returns `Ok(false)`
/// when the variable is unset or empty (not started by systemd with `Type=notify`).
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var("NOTIFY_SOCKET") {
        Ok(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to the notification socket `socket`: a filesystem path
/// starting with '/', or an abstract-namespace name written with a leading '@'.
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let addr = if let Some(name) = socket.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET '{socket}' is neither an absolute path nor an '@' abstract name"
            ),
        ));
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock
        .send_to_addr(state.as_bytes(), &addr)
        .map_err(|e| io::Error::new(e.kind(), format!("send notification to {socket}: {e}")))?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "notification to {socket} truncated to {sent} of {} bytes",
                state.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("recv");
        String::from_utf8(buf[..n].to_vec()).expect("utf8")
    }

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind");
        let path = path.to_str().expect("utf8 path");
        notify_to(path, "READY=1\nSTATUS=up").expect("notify");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up");
    }

    #[test]
    fn sends_to_an_abstract_name() {
        let name = format!("holdfast-systemd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind");
        notify_to(&format!("@{name}"), "READY=1").expect("notify");
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn refuses_relative_paths_and_reports_missing_sockets() {
        let err = notify_to("relative/sock", "READY=1").expect_err("relative");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("none");
        let missing = missing.to_str().expect("utf8 path");
        let err = notify_to(missing, "READY=1").expect_err("missing");
        assert!(err.to_string().contains(missing), "{err}");
    }
}
