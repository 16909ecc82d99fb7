//! A fake D-Bus peer for unit tests: a listener in a temporary directory that checks
//! the SASL exchange and then runs a closure speaking the binary protocol.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use crate::wire::{self, Message, MessageType, Value, FIXED_HEADER_LEN};

/// A fake D-Bus peer on a socket in a temporary directory: checks the SASL exchange
/// (AUTH and BEGIN arrive before it answers OK), then lets `serve` talk the binary
/// protocol.
pub(crate) fn with_peer(
    serve: impl FnOnce(UnixStream) + Send + 'static,
) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bus");
    let listener = UnixListener::bind(&path).expect("bind");
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n") {
            s.read_exact(&mut b).expect("read auth");
            got.push(b[0]);
        }
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, format!("\0AUTH EXTERNAL {hex}\r\n").into_bytes());
        // BEGIN must come without waiting for OK (see Connection::authenticate).
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut begin = [0u8; 7];
        s.read_exact(&mut begin).expect("BEGIN pipelined with AUTH");
        assert_eq!(&begin, b"BEGIN\r\n");
        s.set_read_timeout(None).expect("read timeout");
        s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
            .expect("write OK");
        serve(s);
    });
    (dir, path, handle)
}

pub(crate) fn read_msg(s: &mut UnixStream) -> Message {
    let mut head = [0u8; FIXED_HEADER_LEN];
    s.read_exact(&mut head).expect("read header");
    let len = wire::message_len(&head).expect("length");
    let mut buf = head.to_vec();
    buf.resize(len, 0);
    s.read_exact(&mut buf[FIXED_HEADER_LEN..])
        .expect("read rest");
    Message::decode(&buf).expect("decode").0
}

pub(crate) fn signal(member: &str, body: Vec<Value>) -> Message {
    Message {
        msg_type: MessageType::Signal,
        flags: 0,
        serial: 0,
        path: Some("/org/freedesktop/systemd1".to_owned()),
        interface: Some("org.freedesktop.systemd1.Manager".to_owned()),
        member: Some(member.to_owned()),
        error_name: None,
        reply_serial: None,
        destination: None,
        sender: None,
        unix_fds: None,
        body,
    }
}

pub(crate) fn reply(
    to: &Message,
    msg_type: MessageType,
    error_name: Option<&str>,
    body: Vec<Value>,
) -> Message {
    Message {
        msg_type,
        flags: 0,
        serial: 0,
        path: None,
        interface: None,
        member: None,
        error_name: error_name.map(str::to_owned),
        reply_serial: Some(to.serial),
        destination: None,
        sender: None,
        unix_fds: None,
        body,
    }
}
