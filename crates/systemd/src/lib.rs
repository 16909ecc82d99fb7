//! systemd over D-Bus (private socket or system bus), sd_notify, unit-name rules.
//!
//! [`Connection`] speaks the D-Bus wire protocol ([`wire`]) directly over a Unix socket:
//! systemd's private socket `/run/systemd/private` when running as root (no bus daemon
//! involved), else the system bus. It is blocking and every wait is bounded by a timeout.
//! The manager methods (`start_scope`, `stop_unit`, ...) wait for the job they queue to
//! finish, so a successful return means systemd has done the work. [`notify()`] implements
//! the sd_notify datagram protocol, [`detect`] tells whether systemd is the init system,
//! and [`names`] holds the pure unit-name rules.

mod conn;
pub mod detect;
mod error;
mod manager;
pub mod names;
mod notify;
#[cfg(test)]
mod test_peer;
pub mod wire;

pub use conn::Connection;
pub use error::Error;
pub use manager::Scope;
pub use notify::{notify, notify_to};
