//! Everything that speaks OpenCTI's protocol: the GraphQL client, the listen messages and
//! the bundle splitter, and the data the operations exchange.

pub mod client;
pub mod dialect;
pub mod error;
pub mod escape;
pub mod messages;
pub mod ops;
pub mod prepared;
pub mod split;
pub mod types;

pub use client::{OpenctiClient, OpenctiError};
pub use dialect::Dialect;
