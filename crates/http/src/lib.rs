//! HTTP pieces the agent, the master and the CLI share: a client for JSON calls and
//! RecordIO event streams ([`client`]), RecordIO itself ([`recordio`]), and the server
//! side of an event stream ([`stream`]).

pub mod client;
pub mod recordio;
pub mod stream;

pub use client::{parse_endpoint, Client, Error, EventStream, Reply};
pub use recordio::RecordIoError;
