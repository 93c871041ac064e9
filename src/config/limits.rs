//! The defaults of the size and time limits the configuration can change, here in the leaf
//! so that the configuration's defaults and the clients that apply them name one value.

use std::time::Duration;

/// GraphQL answers are read up to this size unless `opencti.max_answer_bytes` says.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// How long one GraphQL call may take unless `opencti.request_timeout` says.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Upstream answers are read up to this size unless `daemon.max_upstream_bytes` says.
pub const DEFAULT_MAX_UPSTREAM_BYTES: usize = 32 * 1024 * 1024;
