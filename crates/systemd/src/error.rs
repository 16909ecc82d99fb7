//! Errors of talking to systemd.

use std::io;

/// The D-Bus error systemd returns for a unit it does not know (or has not loaded).
pub(crate) const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// Failure of a systemd operation. The underlying cause, if any, is the error's
/// `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed (connect, read, write); `context` says which and where.
    #[error("{context}")]
    Io {
        /// What was attempted, e.g. "connect to /run/systemd/private".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The D-Bus peer refused our credentials or spoke something else than SASL.
    #[error("D-Bus authentication failed: {0}")]
    Auth(String),
    /// The peer sent something this client cannot understand, or a reply of the wrong
    /// shape. The connection may be out of step with the peer; connect again.
    #[error("D-Bus protocol error: {0}")]
    Protocol(String),
    /// systemd (or the bus daemon) answered with a D-Bus error.
    #[error("systemd refused: {name}: {message}")]
    DBus {
        /// The D-Bus error name, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
        name: String,
        /// The human-readable text systemd gave (may be empty).
        message: String,
    },
    /// The job systemd queued for a unit finished with a result other than "done".
    #[error(
        "systemd job for {unit} finished with result '{result}' (see `systemctl status {unit}` \
         and `journalctl -u {unit}`)"
    )]
    JobFailed {
        /// The unit the job was for.
        unit: String,
        /// systemd's job result: "failed", "timeout", "canceled", "dependency", ...
        result: String,
    },
    /// No answer came in time; the text says what was awaited.
    #[error("timed out {0}")]
    Timeout(String),
}

impl Error {
    /// Whether systemd said the unit does not exist (or is not loaded).
    pub fn is_no_such_unit(&self) -> bool {
        matches!(self, Error::DBus { name, .. } if name == NO_SUCH_UNIT)
    }

    /// Whether the connection is gone (peer closed it, e.g. after `systemctl
    /// daemon-reexec`, which closes every private connection). The caller should connect
    /// again and retry.
    pub fn is_disconnected(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
            ),
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let e = Error::DBus {
            name: "org.freedesktop.systemd1.UnitExists".to_owned(),
            message: "Unit holdfast-x.scope already exists.".to_owned(),
        };
        assert_eq!(
            e.to_string(),
            "systemd refused: org.freedesktop.systemd1.UnitExists: Unit holdfast-x.scope already exists."
        );
        assert!(!e.is_no_such_unit());
        let e = Error::DBus {
            name: NO_SUCH_UNIT.to_owned(),
            message: String::new(),
        };
        assert!(e.is_no_such_unit());
    }

    #[test]
    fn disconnects_are_recognised() {
        for kind in [
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(Error::io("read", io::Error::from(kind)).is_disconnected());
        }
        assert!(
            !Error::io("read", io::Error::from(io::ErrorKind::PermissionDenied)).is_disconnected()
        );
        assert!(!Error::Timeout("x".to_owned()).is_disconnected());
    }
}
