//! The HTTP face of the master (`grid-master --http ADDR`): the JSON API
//! under `/api/v1`, the dashboard at `/`, and `/metrics` for Prometheus.

pub mod dashboard;

use tokio::net::TcpListener;

/// Where and how the master serves HTTP.
pub struct HttpServe {
    /// The bound listener.
    pub listener: TcpListener,
    /// Plain HTTP instead of TLS with the master's own identity; only for
    /// a loopback address, or a master that serves gRPC plaintext too.
    pub plaintext: bool,
}
