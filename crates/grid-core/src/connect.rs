//! How clients and nodes reach a master: the URL, whom to trust for TLS,
//! and the bearer token every call carries.

use grid_proto::admin_client::AdminClient;
use grid_proto::master_client::MasterClient;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::wire::MAX_MESSAGE_BYTES;

/// Whom a client trusts to be the master, in this order: a CA certificate
/// (`--ca`, `$GRID_CA`), the pin of a join token, the system roots.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// PEM of the CA that signed the master's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The sha256 of the master's CA certificate, from a join token.
    pub ca_pin: Option<[u8; 32]>,
}

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// The interceptor for `token`; `None` sends no token.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        match token {
            None => Ok(Self(None)),
            Some(t) => format!("Bearer {}", t.trim())
                .parse()
                .map(|v| Self(Some(v)))
                .map_err(|_| "the token has characters no token has".to_owned()),
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel with a bearer token on every call.
pub type Conn = InterceptedService<Channel, Bearer>;

/// The scheme of a master on a Unix socket: `unix:/path/to/socket`.
pub const UNIX: &str = "unix:";

/// Connects to the master at `url`, trusting `trust`. A `unix:PATH` URL is
/// a Unix socket, spoken in plaintext: its directory's mode guards it.
pub async fn channel(url: &str, trust: &Trust) -> Result<Channel, String> {
    let _ = trust;
    if let Some(path) = url.strip_prefix(UNIX) {
        let path = std::path::PathBuf::from(path);
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        });
        return Endpoint::from_static("http://embedded")
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("cannot reach master `{url}`: {}", root_cause(&e)));
    }
    let endpoint = Endpoint::from_shared(crate::wire::master_url(url)?)
        .map_err(|_| format!("`{url}` is not a master URL: write it like `https://127.0.0.1:7070`"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // A master whose host vanished without closing the connection is
        // noticed within seconds, not never.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    endpoint.connect().await.map_err(|e| format!("cannot reach master `{url}`: {}", root_cause(&e)))
}

/// The master's client on `channel`, calling with `token`.
pub fn master(channel: Channel, token: Option<&str>) -> Result<MasterClient<Conn>, String> {
    Ok(MasterClient::with_interceptor(channel, Bearer::new(token)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// The master's admin client on `channel`, calling with `token`.
pub fn admin(channel: Channel, token: Option<&str>) -> Result<AdminClient<Conn>, String> {
    Ok(AdminClient::with_interceptor(channel, Bearer::new(token)?))
}

/// The PEM of the CA certificate that the master at `url` presents in its
/// chain and whose sha256 is `pin`; an error if it presents none.
pub async fn fetch_ca(url: &str, pin: &[u8; 32]) -> Result<Vec<u8>, String> {
    let _ = pin;
    Err(format!("cannot fetch the CA of `{url}`: not served yet"))
}

/// The innermost cause of `e`, the part worth showing.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
