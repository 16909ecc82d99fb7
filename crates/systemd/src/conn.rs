//! A blocking D-Bus connection over a Unix stream socket.

use std::collections::VecDeque;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::wire::{self, Message, MessageType, Value, FIXED_HEADER_LEN};

/// systemd's private socket: only root may connect; no bus daemon is involved.
pub(crate) const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus daemon's socket.
pub(crate) const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Signals nobody has asked for yet are kept up to this many (oldest dropped first): on
/// the private socket systemd sends every Manager signal and every unit's
/// PropertiesChanged to every connection, asked for or not.
const MAX_QUEUED_SIGNALS: usize = 1024;
/// The longest SASL line accepted from the server.
const MAX_AUTH_LINE: usize = 4096;

/// A blocking D-Bus connection, either direct to systemd (private socket) or through
/// the system bus. Every wait is bounded by the connection's timeout (30 s unless
/// changed with [`Connection::set_timeout`]).
///
/// systemd pushes signals to private-socket connections unasked, and buffers what a
/// connection does not read; keep a connection for a burst of operations rather than
/// holding it idle for hours.

#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    path: PathBuf,
    /// Bytes read but not yet consumed as messages.
    rbuf: Vec<u8>,
    next_serial: u32,
    signals: VecDeque<Message>,
    timeout: Duration,
    /// Connected through a bus daemon (Hello sent): signals need a match rule and
    /// systemd's Subscribe.
    bus: bool,
    /// Subscribe and AddMatch have been done on this connection.
    pub(crate) subscribed: bool,
}

impl Connection {
    /// Connects to the D-Bus socket at `path` and authenticates as our effective uid
    /// (SASL EXTERNAL). With `hello` the connection registers with the bus daemon, which
    /// a bus requires before anything else; systemd's private socket has no daemon.
    pub fn connect(path: &Path, hello: bool) -> Result<Connection, Error> {
        let stream = connect_stream(path, DEFAULT_TIMEOUT)?;
        let mut conn = Connection {
            stream,
            path: path.to_owned(),
            rbuf: Vec::new(),
            next_serial: 1,
            signals: VecDeque::new(),
            timeout: DEFAULT_TIMEOUT,
            bus: hello,
            subscribed: false,
        };
        conn.set_timeout(DEFAULT_TIMEOUT)?;
        conn.authenticate()?;
        if hello {
            conn.call(Message::method_call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                vec![],
            ))?;
        }
        Ok(conn)
    }

    /// Connects to systemd: through its private socket if possible (root only; works
    /// without a bus daemon), else through the system bus.
    pub fn system() -> Result<Connection, Error> {
        match Connection::connect(Path::new(PRIVATE_SOCKET), false) {
            Ok(conn) => Ok(conn),
            Err(private_err) => {
                Connection::connect(Path::new(SYSTEM_BUS_SOCKET), true).map_err(|e| match e {
                    // Say why the private socket was not used either.
                    Error::Io { context, source } => Error::Io {
                        context: format!(
                            "{context} (after {PRIVATE_SOCKET} failed: {})",
                            with_causes(&private_err)
                        ),
                        source,
                    },
                    other => other,
                })
            }
        }
    }

    /// Sets how long a call, or a wait for a job, may take before it fails with
    /// [`Error::Timeout`]. A zero duration is treated as one millisecond.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| {
                Error::io(
                    format!("set the write timeout on {}", self.path.display()),
                    e,
                )
            })
    }

    /// The timeout set by [`Connection::set_timeout`].
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the connection goes through a bus daemon rather than directly to systemd.
    pub(crate) fn is_bus(&self) -> bool {
        self.bus
    }

    /// Sends `msg` with the next serial and waits for its reply. Signals that arrive
    /// meanwhile are queued for [`Connection::next_signal`]. An error reply becomes
    /// [`Error::DBus`].
    pub fn call(&mut self, msg: Message) -> Result<Message, Error> {
        let method = msg.method_name();
        msg.validate().map_err(|e| {
            Error::Protocol(format!("refusing to send a malformed {method} call: {e}"))
        })?;
        let serial = self.next_serial;
        // Serial 0 is invalid; wrap around it.
        self.next_serial = self.next_serial.checked_add(1).unwrap_or(1);
        self.send_all(&msg.encode(serial), &method)?;

        let deadline = Instant::now() + self.timeout;
        let what = format!("waiting {:?} for the reply to {method}", self.timeout);
        loop {
            let reply = self.read_message(deadline, &what)?;
            match reply.msg_type {
                MessageType::MethodReturn if reply.reply_serial == Some(serial) => {
                    return Ok(reply)
                }
                MessageType::Error if reply.reply_serial == Some(serial) => {
                    return Err(Error::DBus {
                        name: reply.error_name.clone().unwrap_or_default(),
                        message: reply.first_str().unwrap_or_default().to_owned(),
                    })
                }
                MessageType::Signal => self.queue_signal(reply),
                // Late replies to calls that timed out, or calls to us: not ours to answer.
                _ => {}
            }
        }
    }

    /// Returns the oldest queued signal, or reads until a signal arrives. Fails with
    /// [`Error::Timeout`] once `deadline` passes.
    pub fn next_signal(&mut self, deadline: Instant) -> Result<Message, Error> {
        self.wait_for_signal(deadline, "waiting for a D-Bus signal", |_| true)
    }

    /// Returns the first queued signal `want` accepts, or reads until one arrives,
    /// queueing the others. Fails with [`Error::Timeout`] once `deadline` passes; `what`
    /// describes the wait for that error.
    pub(crate) fn wait_for_signal(
        &mut self,
        deadline: Instant,
        what: &str,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Message, Error> {
        if let Some(i) = self.signals.iter().position(&want) {
            if let Some(m) = self.signals.remove(i) {
                return Ok(m);
            }
        }
        loop {
            let msg = self.read_message(deadline, what)?;
            if msg.msg_type != MessageType::Signal {
                continue;
            }
            if want(&msg) {
                return Ok(msg);
            }
            self.queue_signal(msg);
        }
    }

    /// Reads and throws away whatever the peer has sent that nobody waits for, without
    /// blocking: signals queued or still in the socket. An idle connection to systemd's
    /// private socket receives every signal, so a held connection is drained this way.
    /// Fails when the peer closed the connection or sent something unreadable; the
    /// connection is then useless.
    pub fn discard_pending(&mut self) -> Result<(), Error> {
        self.signals.clear();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // Drop whole messages as they complete so the buffer stays small (bytes may
            // be buffered already, read together with an earlier reply).
            while self.rbuf.len() >= FIXED_HEADER_LEN {
                let len = wire::message_len(&self.rbuf).map_err(|e| {
                    Error::Protocol(format!(
                        "unreadable message from {}: {e}",
                        self.path.display()
                    ))
                })?;
                if self.rbuf.len() < len {
                    break;
                }
                self.rbuf.drain(..len);
            }
            let mut pfd = libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd for the socket `self.stream` owns.
            let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(format!("poll {}", self.path.display()), e));
            }
            if rc == 0 {
                return Ok(());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::io(
                        format!("{} closed the connection", self.path.display()),
                        io::Error::from(io::ErrorKind::UnexpectedEof),
                    ))
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("read from {}", self.path.display()), e)),
            }
        }
    }

    fn queue_signal(&mut self, msg: Message) {
        if self.signals.len() >= MAX_QUEUED_SIGNALS {
            self.signals.pop_front();
        }
        self.signals.push_back(msg);
    }

    /// SASL: a NUL byte, `AUTH EXTERNAL <hex of our euid in decimal>` and `BEGIN` in one
    /// write, then expect `OK <guid>`; after that the binary protocol starts.
    ///
    /// BEGIN goes out with AUTH (as sd-bus clients send it), not after OK: systemd 252's
    /// server leaves a message that arrives in the same read as a late BEGIN unprocessed
    /// in its buffer until more bytes come, so the first call would hang. Sent together,
    /// BEGIN is consumed before any message exists.
    fn authenticate(&mut self) -> Result<(), Error> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let hex_uid: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.send_all(
            format!("\0AUTH EXTERNAL {hex_uid}\r\nBEGIN\r\n").as_bytes(),
            "AUTH",
        )?;
        let deadline = Instant::now() + self.timeout;
        let line = self.read_auth_line(deadline)?;
        if !line.starts_with("OK ") {
            return Err(Error::Auth(format!(
                "{} rejected EXTERNAL authentication as uid {uid}: server said '{}'",
                self.path.display(),
                line.escape_default()
            )));
        }
        Ok(())
    }

    fn read_auth_line(&mut self, deadline: Instant) -> Result<String, Error> {
        loop {
            if let Some(end) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.rbuf.drain(..end + 2).take(end).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.rbuf.len() > MAX_AUTH_LINE {
                return Err(Error::Auth(format!(
                    "{} sent an overlong authentication line; is it a D-Bus socket?",
                    self.path.display()
                )));
            }
            self.fill(deadline, "waiting for the D-Bus authentication reply")?;
        }
    }

    /// Reads one complete message. Messages that cannot be decoded are skipped when they
    /// are signals or calls (an unsupported type in some signal must not break the
    /// connection); an undecodable reply is an error.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Message, Error> {
        loop {
            if self.rbuf.len() >= FIXED_HEADER_LEN {
                let len = wire::message_len(&self.rbuf).map_err(|e| {
                    Error::Protocol(format!(
                        "unreadable message from {}: {e}",
                        self.path.display()
                    ))
                })?;
                if self.rbuf.len() >= len {
                    let decoded = Message::decode(&self.rbuf[..len]);
                    let msg_type = self.rbuf[1];
                    self.rbuf.drain(..len);
                    match decoded {
                        Ok((msg, _)) => return Ok(msg),
                        Err(e)
                            if msg_type == MessageType::MethodReturn as u8
                                || msg_type == MessageType::Error as u8 =>
                        {
                            return Err(Error::Protocol(format!(
                                "unreadable reply from {}: {e}",
                                self.path.display()
                            )))
                        }
                        Err(_) => continue,
                    }
                }
            }
            self.fill(deadline, what)?;
        }
    }

    /// Reads what the socket has into `rbuf`, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant, what: &str) -> Result<(), Error> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!("{what} on {}", self.path.display())));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| {
                Error::io(
                    format!("set the read timeout on {}", self.path.display()),
                    e,
                )
            })?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::io(
                        format!("{what}: {} closed the connection", self.path.display()),
                        io::Error::from(io::ErrorKind::UnexpectedEof),
                    ))
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("{what}: read from {}", self.path.display()),
                        e,
                    ))
                }
            }
        }
    }

    /// Writes all of `buf`. MSG_NOSIGNAL keeps a closed peer from raising SIGPIPE in a
    /// process that has not ignored it; the socket's write timeout bounds a peer that
    /// stops reading.
    fn send_all(&mut self, mut buf: &[u8], what: &str) -> Result<(), Error> {
        while !buf.is_empty() {
            // SAFETY: the pointer and length describe the live slice `buf`, and the fd is
            // owned by `self.stream` for the duration of the call.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(Error::Timeout(format!(
                            "after {:?} sending {what} to {}",
                            self.timeout,
                            self.path.display()
                        )))
                    }
                    _ => {
                        return Err(Error::io(
                            format!("send {what} to {}", self.path.display()),
                            e,
                        ))
                    }
                }
            }
            let n = usize::try_from(n).unwrap_or(0).min(buf.len());
            buf = &buf[n..];
        }
        Ok(())
    }
}

impl std::os::fd::AsFd for Connection {
    /// The socket, to wait on (poll) for what the peer sends.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.stream)
    }
}

/// Connects a Unix stream socket to `path` with a send timeout set first: connecting
/// blocks while the listener's backlog is full (e.g. a stuck PID 1), and the kernel
/// bounds that wait by the send timeout.
fn connect_stream(path: &Path, timeout: Duration) -> Result<UnixStream, Error> {
    let ctx = || format!("connect to {}", path.display());
    // SAFETY: socket() takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io(ctx(), io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a freshly created socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    // SAFETY: `tv` is a valid timeval and its size is passed alongside it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            socklen_of::<libc::timeval>(),
        )
    };
    if rc < 0 {
        return Err(Error::io(ctx(), io::Error::last_os_error()));
    }

    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // Leave room for the terminating NUL.
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(Error::io(
            ctx(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path too long or contains NUL",
            ),
        ));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    loop {
        // SAFETY: `addr` is an initialised sockaddr_un and its size is passed with it.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                socklen_of::<libc::sockaddr_un>(),
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                return Err(Error::Timeout(format!(
                    "after {timeout:?} connecting to {} (its listen backlog is full; is the \
                     service manager hung?)",
                    path.display()
                )))
            }
            _ => return Err(Error::io(ctx(), e)),
        }
    }
    Ok(UnixStream::from(fd))
}

/// `e` and its causes, joined with ": ".
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option structs are a few hundred bytes at most.
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// Extracts the single object path of a reply such as StartTransientUnit's `o`.
pub(crate) fn reply_object_path(reply: &Message, method: &str) -> Result<String, Error> {
    match reply.body.first() {
        Some(Value::ObjectPath(p)) => Ok(p.clone()),
        _ => Err(Error::Protocol(format!(
            "reply to {method} has signature '{}', expected 'o'",
            reply.signature()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::net::UnixListener;
    use std::thread;

    use super::*;
    use crate::test_peer::{read_msg, reply, signal, with_peer};

    #[test]
    fn call_queues_signals_and_matches_reply_serial() {
        let (_dir, path, peer) = with_peer(|mut s| {
            let call = read_msg(&mut s);
            assert_eq!(call.member.as_deref(), Some("Ping"));
            assert_eq!(call.serial, 1);
            // A signal, a reply to someone else's serial, then ours, written in one go
            // and split oddly so the reader must reassemble.
            let mut out = signal("UnitNew", vec![Value::Str("a".to_owned())]).encode(100);
            let mut stale = reply(&call, MessageType::MethodReturn, None, vec![]);
            stale.reply_serial = Some(99);
            out.extend(stale.encode(101));
            out.extend(
                reply(
                    &call,
                    MessageType::MethodReturn,
                    None,
                    vec![Value::Str("pong".to_owned())],
                )
                .encode(102),
            );
            for part in out.chunks(7) {
                s.write_all(part).expect("write");
            }
            let call = read_msg(&mut s);
            assert_eq!(call.serial, 2);
            s.write_all(
                &reply(
                    &call,
                    MessageType::Error,
                    Some("org.freedesktop.systemd1.NoSuchUnit"),
                    vec![Value::Str("Unit x.scope not loaded.".to_owned())],
                )
                .encode(103),
            )
            .expect("write");
        });
        let mut conn = Connection::connect(&path, false).expect("connect");
        let ping = || Message::method_call("d.e", "/", "d.e", "Ping", vec![]);
        let got = conn.call(ping()).expect("call");
        assert_eq!(got.first_str(), Some("pong"));
        let err = conn.call(ping()).expect_err("error reply");
        assert!(err.is_no_such_unit(), "{err}");
        assert_eq!(
            err.to_string(),
            "systemd refused: org.freedesktop.systemd1.NoSuchUnit: Unit x.scope not loaded."
        );
        let sig = conn
            .next_signal(Instant::now() + Duration::from_secs(5))
            .expect("queued signal");
        assert_eq!(sig.member.as_deref(), Some("UnitNew"));
        peer.join().expect("peer");
        // The peer is gone now: a read reports a disconnect, not a timeout.
        let err = conn
            .next_signal(Instant::now() + Duration::from_secs(5))
            .expect_err("closed");
        assert!(err.is_disconnected(), "{err:?}");
    }

    #[test]
    fn discard_pending_drops_unread_signals_and_keeps_the_connection() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (_dir, path, peer) = with_peer(move |mut s| {
            // Two signals and half of a third, as an idle connection would collect them.
            let mut out = signal("UnitNew", vec![Value::Str("a".to_owned())]).encode(1);
            out.extend(signal("UnitNew", vec![Value::Str("b".to_owned())]).encode(2));
            let third = signal("UnitRemoved", vec![Value::Str("c".to_owned())]).encode(3);
            out.extend(&third[..10]);
            s.write_all(&out).expect("write");
            rx.recv().expect("discarded");
            s.write_all(&third[10..]).expect("write");
            let call = read_msg(&mut s);
            s.write_all(
                &reply(
                    &call,
                    MessageType::MethodReturn,
                    None,
                    vec![Value::Str("pong".to_owned())],
                )
                .encode(4),
            )
            .expect("write");
        });
        let mut conn = Connection::connect(&path, false).expect("connect");
        // Discard until the peer's bytes have all arrived.
        let deadline = Instant::now() + Duration::from_secs(5);
        while conn.rbuf.len() != 10 && Instant::now() < deadline {
            conn.discard_pending().expect("discard");
            thread::sleep(Duration::from_millis(10));
        }
        // Only the partial third signal is left.
        assert_eq!(conn.rbuf.len(), 10);
        tx.send(()).expect("send");
        // The rest of it arrives with the reply: the call skips the signal.
        let got = conn
            .call(Message::method_call("d.e", "/", "d.e", "Ping", vec![]))
            .expect("call");
        assert_eq!(got.first_str(), Some("pong"));
        // The completed third signal was queued by the call; discarding drops it, and
        // reports the peer's close.
        assert_eq!(conn.signals.len(), 1);
        peer.join().expect("peer");
        let err = conn.discard_pending().expect_err("peer closed");
        assert!(err.is_disconnected(), "{err:?}");
        assert!(conn.signals.is_empty());
    }

    #[test]
    fn silent_peer_times_out() {
        let (_dir, path, peer) = with_peer(|mut s| {
            let _ = read_msg(&mut s);
            thread::sleep(Duration::from_millis(500));
        });
        let mut conn = Connection::connect(&path, false).expect("connect");
        conn.set_timeout(Duration::from_millis(100))
            .expect("timeout");
        let started = Instant::now();
        let err = conn
            .call(Message::method_call("d.e", "/", "d.e", "Ping", vec![]))
            .expect_err("no reply");
        assert!(matches!(err, Error::Timeout(_)), "{err:?}");
        assert!(err.to_string().contains("d.e.Ping"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        peer.join().expect("peer");
    }

    #[test]
    fn rejected_auth_is_an_auth_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus");
        let listener = UnixListener::bind(&path).expect("bind");
        let peer = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut b = [0u8; 64];
            let _ = s.read(&mut b).expect("read");
            s.write_all(b"REJECTED EXTERNAL\r\n").expect("write");
        });
        let err = Connection::connect(&path, false).expect_err("rejected");
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert!(err.to_string().contains("REJECTED"), "{err}");
        peer.join().expect("peer");
    }

    #[test]
    fn connect_to_missing_socket_says_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("none");
        let err = Connection::connect(&path, false).expect_err("missing");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(matches!(err, Error::Io { .. }));
    }
}
