//! The HTTP server's listener: TCP connections, TLS-wrapped with the
//! master's own server identity unless plaintext, bounded in number, with
//! handshakes done off the accept loop and cut short when slow.

use crate::tls::ServerIdentity;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Connections open at once; past it, new ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections open at once from one client address.
pub const CONNECTIONS_PER_CLIENT: usize = 64;
/// TLS handshakes (or, plaintext, waits for a first byte) at once.
const HANDSHAKES: usize = 64;
/// Handshakes at once from one client address.
const HANDSHAKES_PER_CLIENT: usize = 4;

/// What a connection reads and writes through.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An accepted connection, holding its place among [`MAX_CONNECTIONS`].
pub struct Conn {
    io: Box<dyn Io>,
    _permit: OwnedSemaphorePermit,
    _client: crate::gates::Permit,
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Connections ready to serve, as axum's server takes them.
pub struct HttpListener {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The rustls config of `identity`, speaking HTTP/2 and HTTP/1.1.
pub fn tls_config(identity: &ServerIdentity) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(&identity.chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the server certificate chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&identity.key_pem).map_err(|e| anyhow::anyhow!("the server key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl HttpListener {
    /// Accepts on `listener`, with TLS per `tls` (plaintext if `None`).
    pub fn new(listener: TcpListener, tls: Option<rustls::ServerConfig>) -> io::Result<Self> {
        let (tx, ready) = mpsc::channel(HANDSHAKES);
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let accepting = tokio::spawn(accept(listener, acceptor, tx));
        Ok(Self { ready, accepting })
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<(Conn, SocketAddr)>,
) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handshakes = crate::gates::Gate::new("handshakes", HANDSHAKES_PER_CLIENT, HANDSHAKES);
    let clients = crate::gates::Gate::new("connections", CONNECTIONS_PER_CLIENT, MAX_CONNECTIONS);
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else { return };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!("HTTP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // One client holds no more than its share: past it, closed at once.
        let Ok(client) = clients.enter(&peer.ip().to_string()) else {
            tracing::debug!(%peer, "HTTP connection refused: too many from this client");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // Handshakes are never waited for here: past a client's share, or
        // past all there may be, the connection is closed at once.
        let Ok(shaking) = handshakes.enter(&peer.ip().to_string()) else {
            tracing::debug!(%peer, "HTTP connection refused: too many handshakes under way");
            continue;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        // A connection that says nothing, or takes its time over the
        // handshake, is dropped after the handshake's bound.
        tokio::spawn(async move {
            let _shaking = shaking;
            let io: Box<dyn Io> = match acceptor {
                None => match tokio::time::timeout(crate::tls::HANDSHAKE, tcp.readable()).await {
                    Ok(Ok(())) => Box::new(tcp),
                    _ => return tracing::debug!(%peer, "HTTP connection silent; dropped"),
                },
                Some(acceptor) => match tokio::time::timeout(crate::tls::HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => return tracing::debug!(%peer, "HTTP TLS handshake failed: {e}"),
                    Err(_) => return tracing::debug!(%peer, "HTTP TLS handshake timed out"),
                },
            };
            let _ = tx.send((Conn { io, _permit: permit, _client: client }, peer)).await;
        });
    }
}

impl HttpListener {
    /// The next connection ready to serve, with its client's address.
    pub async fn next(&mut self) -> (Conn, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }
}
