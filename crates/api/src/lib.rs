//! Mesos v1 wire types and call parsing, in Mesos's JSON.
//!
//! This crate is pure: it turns request bytes into typed calls and typed answers into JSON,
//! and it never touches the host. Only types that cross the HTTP boundary live here.
//!
//! JSON follows Mesos's proto-to-JSON mapping: snake_case field names, enums by name,
//! 64-bit integers as plain numbers, unknown fields ignored.

pub mod agent;
pub mod base64;
pub mod error;
pub mod executor;
pub mod http;
pub mod ids;
pub mod internal;
mod json;
pub mod master;
pub mod scheduler;
pub mod v1;

pub use error::ApiError;
