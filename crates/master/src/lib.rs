//! The Holdfast master. See ARCHITECTURE.md, "Master and frameworks".

pub mod allocator;
pub mod http;
pub mod legacy;
pub mod metrics;
pub mod operator;
pub mod registry;
pub mod state;
#[cfg(test)]
mod testkit;
