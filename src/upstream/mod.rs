//! The plumbing between a connector and its upstream API: the shared HTTP client and egress
//! ([`http`]: trust, proxies, size-limited answers, `UpstreamError`), the answer cache
//! ([`cache`]) and the per-connector gate ([`ratelimit`]: token bucket, 429 pauses).

pub mod cache;
pub mod http;
pub mod ratelimit;
