//! Everything that speaks OpenCTI's protocol: the GraphQL client, the listen messages and
//! the bundle splitter.

pub mod client;
pub mod messages;
pub mod split;

pub use client::{OpenctiClient, OpenctiError};
