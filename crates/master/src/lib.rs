//! The Holdfast master. See ARCHITECTURE.md, "Master and frameworks".

pub mod allocator;
pub mod http;
pub mod state;
