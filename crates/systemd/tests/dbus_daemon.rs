//! The client against a real bus daemon: a private `dbus-daemon` on a socket in a
//! temporary directory. Checks authentication, Hello, error replies, AddMatch and signal
//! delivery against an independent implementation of the protocol. Skips when
//! `dbus-daemon` is not installed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_systemd::wire::{Message, Value};
use holdfast_systemd::{Connection, Error};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(dir: &Path) -> Option<Daemon> {
    let socket = dir.join("bus");
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("write config");
    let child = match Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .arg("--nofork")
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => Daemon(c),
        Err(e) => {
            eprintln!("skipped: cannot run dbus-daemon: {e}");
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "dbus-daemon did not create {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

fn dbus_call(member: &str, body: Vec<Value>) -> Message {
    Message::method_call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        member,
        body,
    )
}

#[test]
fn talks_to_a_real_bus_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_daemon) = start_daemon(dir.path()) else {
        return;
    };
    let socket = dir.path().join("bus");
    let mut a = Connection::connect(&socket, true).expect("connect a");
    let mut b = Connection::connect(&socket, true).expect("connect b");

    let id = a.call(dbus_call("GetId", vec![])).expect("GetId");
    assert!(
        matches!(id.body.as_slice(), [Value::Str(s)] if s.len() == 32),
        "{:?}",
        id.body
    );

    // An error reply carries the daemon's name and text.
    let err = a
        .call(dbus_call(
            "GetNameOwner",
            vec![Value::Str("org.example.Nobody".to_owned())],
        ))
        .expect_err("no owner");
    match &err {
        Error::DBus { name, message } => {
            assert_eq!(name, "org.freedesktop.DBus.Error.NameHasNoOwner");
            assert!(message.contains("org.example.Nobody"), "{message}");
        }
        other => panic!("expected a D-Bus error, got {other:?}"),
    }

    // A signal broadcast by b reaches a through a's match rule. The daemon first sends a
    // its own NameAcquired signal, which next_signal also returns.
    a.call(dbus_call(
        "AddMatch",
        vec![Value::Str(
            "type='signal',interface='org.example.Test',member='Ping'".to_owned(),
        )],
    ))
    .expect("AddMatch");
    let status = Command::new("dbus-send")
        .arg(format!("--bus=unix:path={}", socket.display()))
        .args([
            "--type=signal",
            "/org/example",
            "org.example.Test.Ping",
            "string:hello",
            "uint32:7",
        ])
        .status();
    match status {
        Ok(s) => assert!(s.success(), "dbus-send failed: {s}"),
        Err(e) => {
            eprintln!("skipped the signal part: cannot run dbus-send: {e}");
            return;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let ping = loop {
        let sig = a.next_signal(deadline).expect("signal");
        if sig.member.as_deref() == Some("Ping") {
            break sig;
        }
    };
    assert_eq!(ping.interface.as_deref(), Some("org.example.Test"));
    assert_eq!(ping.path.as_deref(), Some("/org/example"));
    assert_eq!(
        ping.body,
        vec![Value::Str("hello".to_owned()), Value::U32(7)]
    );

    // b added no match rule, so all it gets is its own NameAcquired; after that the wait
    // ends at the deadline.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(200);
    loop {
        match b.next_signal(deadline) {
            Ok(m) => assert_eq!(m.member.as_deref(), Some("NameAcquired"), "{m:?}"),
            Err(Error::Timeout(_)) => break,
            Err(e) => panic!("expected a timeout, got {e:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
