//! How clients and nodes reach a master: the URL, whom to trust for TLS,
//! and the bearer token every call carries.

use grid_proto::admin_client::AdminClient;
use grid_proto::master_client::MasterClient;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

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

/// How long a TLS handshake with a master may take.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long reaching a master's port may take.
const CONNECT: Duration = Duration::from_secs(5);

/// Connects to the master at `url`, trusting `trust`. `https://` (the
/// default for `HOST:PORT`) speaks TLS and trusts, in this order, the CA in
/// `trust.ca_pem`, the CA whose sha256 is `trust.ca_pin` (fetched from the
/// master with [`fetch_ca`]), or the system's roots. `http://` speaks
/// plaintext, to a master started with `--insecure`. A `unix:PATH` URL is a
/// Unix socket, spoken in plaintext: its directory's mode guards it.
pub async fn channel(url: &str, trust: &Trust) -> Result<Channel, String> {
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
    let full = crate::wire::master_url(url)?;
    let bad_url = || format!("`{url}` is not a master URL: write it like `https://127.0.0.1:7070`");
    let uri: tonic::transport::Uri = full.parse().map_err(|_| bad_url())?;
    let host = uri.host().ok_or_else(bad_url)?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let endpoint = Endpoint::from_shared(full.clone())
        .map_err(|_| bad_url())?
        .connect_timeout(CONNECT)
        .tcp_nodelay(true)
        // A master whose host vanished without closing the connection is
        // noticed within seconds, not never.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if !uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https")) {
        // Plaintext: a master that answers in TLS is told apart from a
        // broken one, so that the caller learns to write `https://`.
        let port = uri.port_u16().unwrap_or(80);
        speaks_plaintext(&host, port).await.map_err(|why| format!("cannot reach master `{url}`: {why}"))?;
        return endpoint.connect().await.map_err(|e| format!("cannot reach master `{url}`: {}", root_cause(&e)));
    }
    let (ca, trusted) = match (&trust.ca_pem, &trust.ca_pin) {
        (Some(pem), _) => {
            certificates(pem).map_err(|e| format!("the CA certificate given is unusable: {e}"))?;
            (Some(pem.clone()), "the CA given")
        }
        (None, Some(pin)) => (Some(fetch_ca(url, pin).await?), "the CA pinned by the join token"),
        (None, None) => (None, "any CA in the system's roots"),
    };
    let tls = ClientTlsConfig::new().domain_name(host.clone()).timeout(HANDSHAKE);
    let tls = match ca {
        Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
        None => tls.with_native_roots(),
    };
    let endpoint =
        endpoint.tls_config(tls).map_err(|e| format!("cannot set up TLS for `{url}`: {}", root_cause(&e)))?;
    endpoint.connect().await.map_err(|e| format!("cannot reach master `{url}`: {}", tls_failure(&e, &host, trusted)))
}

/// Why a TLS connection failed, in words: `host` is the name asked for,
/// `trusted` whom the client trusted.
fn tls_failure(e: &(dyn std::error::Error + 'static), host: &str, trusted: &str) -> String {
    use rustls::{CertificateError, Error as TlsError};
    let Some(tls) = find_tls_error(e) else { return root_cause(e) };
    match tls {
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            format!("the master's certificate is not signed by {trusted}")
        }
        TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the master's certificate does not name `{host}`: reach it by a name its certificate has, \
             or give it this one (`grid-master --tls-name {host}`)"
        ),
        TlsError::InvalidMessage(_) => {
            "the master does not speak TLS: if it was started with --insecure, write its URL with `http://`".into()
        }
        other => other.to_string(),
    }
}

/// The TLS error somewhere in `e`'s chain of causes.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref())
        {
            return Some(tls);
        }
        cause = c.source();
    }
    None
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
/// chain and whose sha256 is `pin`; an error if it presents none. The
/// master's own certificate is checked against that CA (signature, dates,
/// name) before the CA is returned, so the answer is as trustworthy as the
/// pin.
pub async fn fetch_ca(url: &str, pin: &[u8; 32]) -> Result<Vec<u8>, String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    let full = crate::wire::master_url(url)?;
    let bad_url = || format!("`{url}` is not a master URL: write it like `https://127.0.0.1:7070`");
    let uri: tonic::transport::Uri = full.parse().map_err(|_| bad_url())?;
    if !uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https")) {
        return Err(format!("cannot fetch the CA of `{url}`: a join token's pin needs an `https://` master"));
    }
    let host = uri.host().ok_or_else(bad_url)?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.clone()).map_err(|_| bad_url())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture { chain: Mutex::new(Vec::new()), provider: provider.clone() });
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let unreachable = |why: String| format!("cannot reach master `{url}`: {why}");
    let tcp = tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| unreachable("timed out connecting".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name.clone(), tcp);
    let ended = tokio::time::timeout(HANDSHAKE, handshake)
        .await
        .map_err(|_| unreachable("the TLS handshake timed out".into()))?;
    let chain = std::mem::take(&mut *capture.chain.lock().unwrap_or_else(|p| p.into_inner()));
    if chain.is_empty() {
        // The handshake ended before the master showed a certificate.
        let why = match ended {
            Ok(_) => "the master showed no certificate".to_owned(),
            Err(e) => tls_failure(&e, &host, "the CA pinned by the join token"),
        };
        return Err(unreachable(why));
    }
    let Some(ca) = chain.iter().find(|c| sha256(c) == *pin) else {
        let offered: Vec<String> = chain.iter().map(|c| hex::encode(sha256(c))).collect();
        return Err(format!(
            "the master at `{url}` offers no CA with the join token's pin: expected sha256 {}, offered {}: \
             the join token is for another master, or someone is in between",
            hex::encode(pin),
            offered.join(", ")
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| format!("the pinned CA of `{url}` is unusable: {e}"))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("the pinned CA of `{url}` is unusable: {e}"))?;
    verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).map_err(|e| {
        let why = tls_failure(&e, &host, "the CA pinned by the join token");
        format!("cannot trust master `{url}`: {why}")
    })?;
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE", ca.to_vec())).into_bytes())
}

/// The sha256 of the first certificate in `pem` (of its DER): the pin of a
/// CA certificate.
pub fn pin_of_pem(pem: &[u8]) -> Result<[u8; 32], String> {
    Ok(sha256(&certificates(pem)?[0]))
}

/// The certificates in `pem`, in order; an error if there are none.
fn certificates(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| rustls::pki_types::CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

fn sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

/// A verifier that records the chain a master presents and trusts none:
/// the handshake always fails, after the chain is known.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Vec<rustls::pki_types::CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        Err(rustls::Error::General("chain recorded, not trusted".into()))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("chain recorded, not trusted".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("chain recorded, not trusted".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether the master at `host:port` speaks plaintext HTTP/2: it is sent
/// the client's preface and an empty SETTINGS frame, and answers with a
/// frame, whose first byte (a length's high byte) is 0. A TLS master answers
/// with an alert (a record starting `0x15`), or closes the connection before
/// a word when its reset overtakes the alert.
async fn speaks_plaintext(host: &str, port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let tls = |why: &str| {
        format!("{why}: a master speaks TLS unless it was started with --insecure: write its URL with `https://`")
    };
    let mut tcp = tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timed out connecting".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut first = [0u8; 1];
    let answer = async {
        tcp.write_all(HELLO).await?;
        tcp.read(&mut first).await
    };
    match tokio::time::timeout(HANDSHAKE, answer).await {
        Err(_) => Err("the master did not answer".into()),
        Ok(Ok(1)) if first[0] == 0 => Ok(()),
        Ok(Ok(1)) if matches!(first[0], 0x15 | 0x16) => Err(tls("the master answered in TLS")),
        Ok(Ok(1)) => Err("the master does not speak gRPC".into()),
        Ok(Ok(_)) | Ok(Err(_)) => {
            Err(tls("the master closed the connection without a word, as one that speaks TLS does"))
        }
    }
}

/// The innermost cause of `e`, the part worth showing.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
