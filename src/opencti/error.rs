//! A failed GraphQL call, and what it means for the caller (retry, probe `about`, fail).

/// A failed GraphQL call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenctiError {
    /// Could not connect to the platform at all (connection refused, DNS): it is down.
    #[error("OpenCTI is unreachable: {0}")]
    Unreachable(String),
    /// The exchange with the platform failed (a timeout, a connection cut mid-answer).
    #[error("OpenCTI is unreachable: {0}")]
    Transport(String),
    /// A non-200 answer (400 for a query the schema rejects, 5xx while the platform starts).
    #[error("OpenCTI answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// `errors` in the answer (pycti raises `name: message`).
    #[error("OpenCTI error {name}: {message}")]
    GraphQl { name: String, message: String },
    /// A 200 answer without the expected data, or one too large to read.
    #[error("unexpected OpenCTI answer: {0}")]
    Decode(String),
    /// The request could not be built (a draft id that is no header value): never transient.
    #[error("the OpenCTI request could not be built: {0}")]
    Request(String),
}

impl OpenctiError {
    /// The platform could not be connected to at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, OpenctiError::Unreachable(_))
    }

    /// A failure that may mean the whole platform is unavailable (a refused connection, a
    /// timeout, a 5xx/429 from it or from the ingress before it), rather than a refusal of
    /// this one request: the caller asks `about` before deciding which it is.
    pub fn may_mean_down(&self) -> bool {
        match self {
            OpenctiError::Unreachable(_) | OpenctiError::Transport(_) => true,
            OpenctiError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            OpenctiError::GraphQl { .. } | OpenctiError::Decode(_) | OpenctiError::Request(_) => {
                false
            }
        }
    }

    /// Worth retrying: the platform is down, restarting or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenctiError::Unreachable(_) | OpenctiError::Transport(_) => true,
            OpenctiError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            OpenctiError::GraphQl { name, .. } => name == "LOCK_ERROR" || name == "DATABASE_ERROR",
            OpenctiError::Decode(_) | OpenctiError::Request(_) => false,
        }
    }
}
