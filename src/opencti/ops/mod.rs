//! The GraphQL operations, one file per group: each operation's text beside the client
//! method that sends it. The transport (authentication, size limit, `errors`) is
//! [`super::client`]'s.

pub mod connector;
pub mod push;
pub mod read;
pub mod work;

pub use connector::*;
pub use push::*;
pub use read::*;
pub use work::*;
