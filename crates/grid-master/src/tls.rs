//! The master's TLS identity: a CA and server certificate of its own, made
//! on first start in the data dir, or the operator's certificate and key.
//!
//! The files of an automatic setup: `ca.pem` and `ca.key` (the CA, whose
//! certificate's sha256 is the pin a join token carries), `server.pem` (the
//! server certificate, then the CA's: the chain) and `server.key`. Keys are
//! written with mode 0600 from their first byte, certificates 0644, each
//! through a temporary file and a rename, so a crash leaves the old file or
//! the new one, never half of one.

use crate::{MasterError, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The CA certificate, in the data dir.
pub const CA_CERT: &str = "ca.pem";
/// The CA key, in the data dir (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The server certificate and then the CA's, in the data dir.
pub const SERVER_CERT: &str = "server.pem";
/// The server key, in the data dir (mode 0600).
pub const SERVER_KEY: &str = "server.key";

/// How a master speaks on TCP. A Unix socket is always plaintext: its
/// directory's mode guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetup {
    /// A CA and server certificate of the master's own, made in the data
    /// dir on first start. The server certificate names `localhost`,
    /// `127.0.0.1`, `::1`, the host's name and each of `names`.
    Auto { names: Vec<String> },
    /// The operator's certificate chain (PEM, the server's certificate
    /// first) and its key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plaintext (`--insecure`): for a network where everyone is trusted.
    Off,
}

/// What a master serves TLS with.
#[derive(Clone)]
pub struct ServerIdentity {
    /// The certificate chain, PEM, the server's certificate first.
    pub chain_pem: Vec<u8>,
    /// The server's private key, PEM.
    pub key_pem: Vec<u8>,
    /// The sha256 of the CA certificate's DER, when there is a CA to pin.
    pub ca_pin: Option<[u8; 32]>,
    /// Where the CA certificate is, for clients to copy (automatic setup).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("ca_pin", &self.ca_pin.map(hex::encode))
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// The identity `setup` asks for, made or loaded from `data_dir`; `None`
/// for plaintext.
pub fn prepare(setup: &TlsSetup, data_dir: &Path) -> Result<Option<ServerIdentity>> {
    match setup {
        TlsSetup::Off => Ok(None),
        TlsSetup::Auto { names } => auto(data_dir, names).map(Some),
        TlsSetup::Files { cert, key } => files(cert, key).map(Some),
    }
}

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// tonic's server TLS for `identity`, with rustls over ring.
pub fn server_config(identity: &ServerIdentity) -> tonic::transport::ServerTlsConfig {
    // tonic's server takes rustls's process-wide provider: make it ring's,
    // unless one is set already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(&identity.chain_pem, &identity.key_pem))
        .timeout(HANDSHAKE)
}

/// The names the server certificate of an automatic setup carries: the
/// loopback names, the host's name, and `extra`, each normalised (IP
/// addresses in their canonical form, DNS names lower case).
pub fn wanted_names(extra: &[String]) -> Result<BTreeSet<String>> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = host_name() {
        names.push(host);
    }
    let mut wanted = BTreeSet::new();
    for name in names.iter().chain(extra) {
        wanted.insert(normalise(name).ok_or_else(|| {
            MasterError::InvalidArgument(format!("--tls-name `{name}`: not a DNS name or an IP address"))
        })?);
    }
    Ok(wanted)
}

/// `name` as a certificate names it; `None` if it is no DNS name or IP.
fn normalise(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.');
    if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    ServerName::try_from(name).ok().map(|_| name.to_ascii_lowercase())
}

/// This host's name, if it has one worth naming.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    normalise(name).filter(|n| !n.is_empty() && n != "localhost" && n != "(none)")
}

fn tls_error(path: &Path, why: impl std::fmt::Display) -> MasterError {
    MasterError::InvalidArgument(format!("`{}`: {why}", path.display()))
}

/// The automatic setup: the CA of `dir` (made if there is none), and a
/// server certificate from it naming every wanted name (made anew when the
/// one in `dir` lacks a name, or is not the CA's).
fn auto(dir: &Path, extra: &[String]) -> Result<ServerIdentity> {
    std::fs::create_dir_all(dir).map_err(MasterError::io(dir))?;
    let wanted = wanted_names(extra)?;
    let (ca_pem, ca_key) = ca(dir)?;
    let ca_der = der_of(&ca_pem, &dir.join(CA_CERT))?;
    let (cert_path, key_path) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
    let current = match (std::fs::read(&cert_path), std::fs::read(&key_path)) {
        (Ok(chain), Ok(key)) if server_fits(&chain, &key, &ca_der, &wanted) => Some((chain, key)),
        _ => None,
    };
    let (chain_pem, key_pem) = match current {
        Some(pair) => pair,
        None => {
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                .map_err(|e| tls_error(&dir.join(CA_CERT), format!("not a usable CA certificate: {e}")))?;
            let key = KeyPair::generate().map_err(|e| MasterError::Internal(format!("cannot make a key: {e}")))?;
            let mut params = CertificateParams::new(wanted.iter().cloned().collect::<Vec<_>>())
                .map_err(|e| MasterError::InvalidArgument(format!("cannot name the server certificate: {e}")))?;
            params.distinguished_name = name("wasm-grid master");
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.use_authority_key_identifier_extension = true;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(|e| MasterError::Internal(format!("cannot sign the server certificate: {e}")))?;
            let chain = format!("{}{}", cert.pem(), ca_pem).into_bytes();
            let key_pem = key.serialize_pem().into_bytes();
            write_file(&key_path, &key_pem, 0o600)?;
            write_file(&cert_path, &chain, 0o644)?;
            tracing::info!(path = %cert_path.display(), names = ?wanted, "new server certificate");
            (chain, key_pem)
        }
    };
    Ok(ServerIdentity {
        chain_pem,
        key_pem,
        ca_pin: Some(Sha256::digest(&ca_der).into()),
        ca_file: Some(dir.join(CA_CERT)),
    })
}

/// The CA of `dir`: its certificate's PEM and its key, made if neither file
/// is there.
fn ca(dir: &Path) -> Result<(String, KeyPair)> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let read = |path: &Path| match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MasterError::io(path)(e)),
    };
    match (read(&cert_path)?, read(&key_path)?) {
        (Some(cert), Some(key)) => {
            let key = KeyPair::from_pem(&key).map_err(|e| tls_error(&key_path, format!("not a usable key: {e}")))?;
            let der = der_of(&cert, &cert_path)?;
            let (_, parsed) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| tls_error(&cert_path, format!("not a usable certificate: {e}")))?;
            if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
                return Err(tls_error(&key_path, format!("is not the key of `{}`", cert_path.display())));
            }
            Ok((cert, key))
        }
        (None, None) => {
            let (cert, key) = new_ca()?;
            // The key first: a CA certificate is never there without it.
            write_file(&key_path, key.as_bytes(), 0o600)?;
            write_file(&cert_path, cert.as_bytes(), 0o644)?;
            tracing::info!(path = %cert_path.display(), "new CA");
            let key = KeyPair::from_pem(&key).map_err(|e| MasterError::Internal(format!("cannot read a key: {e}")))?;
            Ok((cert, key))
        }
        (Some(_), None) | (None, Some(_)) => Err(MasterError::InvalidArgument(format!(
            "`{}` and `{}` go together and one is missing: restore it, or remove the other to make a new CA \
             (join tokens and CA copies made before will stop working)",
            cert_path.display(),
            key_path.display()
        ))),
    }
}

/// A new CA: its certificate and its key, PEM.
pub fn new_ca() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| MasterError::Internal(format!("cannot make a key: {e}")))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| MasterError::Internal(format!("cannot make the CA: {e}")))?;
    params.distinguished_name = name(&format!("wasm-grid CA {}", host_name().unwrap_or_default()));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).map_err(|e| MasterError::Internal(format!("cannot make the CA: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The CA in `dir` (certificate and key, PEM), if both files are there
/// and go together.
pub fn existing_ca(dir: &Path) -> Option<(String, String)> {
    let cert = std::fs::read_to_string(dir.join(CA_CERT)).ok()?;
    let key = std::fs::read_to_string(dir.join(CA_KEY)).ok()?;
    // Both are there: this only checks that they go together.
    ca(dir).ok()?;
    Some((cert, key))
}

/// The identity of a master of a grid whose CA is `ca_cert` and `ca_key`
/// (PEM): the CA is written to `dir` as `ca.pem` and `ca.key` (replacing
/// another there), and the master's own server certificate, naming the
/// loopback names, the host's name and `names`, is made from it as in an
/// automatic setup.
pub fn from_ca(dir: &Path, ca_cert: &str, ca_key: &str, names: &[String]) -> Result<ServerIdentity> {
    std::fs::create_dir_all(dir).map_err(MasterError::io(dir))?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let same = |path: &Path, text: &str| std::fs::read_to_string(path).is_ok_and(|t| t == text);
    if !same(&cert_path, ca_cert) || !same(&key_path, ca_key) {
        if cert_path.exists() {
            tracing::warn!(path = %cert_path.display(), "replacing this master's CA with the grid's");
        }
        write_file(&key_path, ca_key.as_bytes(), 0o600)?;
        write_file(&cert_path, ca_cert.as_bytes(), 0o644)?;
    }
    auto(dir, names)
}

/// Whether the server certificate `chain` (PEM) and `key` (PEM) go
/// together, come from the CA `ca_der`, and name every name in `wanted`.
fn server_fits(chain: &[u8], key: &[u8], ca_der: &[u8], wanted: &BTreeSet<String>) -> bool {
    let Ok(certs) = certificates(chain) else { return false };
    if certs.len() != 2 || certs[1].as_ref() != ca_der {
        return false;
    }
    if certified(certs.clone(), key).is_err() {
        return false;
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&certs[0]) else { return false };
    let Ok(Some(sans)) = cert.subject_alternative_name() else { return false };
    let named: BTreeSet<String> = sans
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(dns) => normalise(dns),
            x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    wanted.is_subset(&named)
}

/// The operator's certificate chain and key, checked to go together.
fn files(cert_path: &Path, key_path: &Path) -> Result<ServerIdentity> {
    let chain_pem = std::fs::read(cert_path).map_err(|e| tls_error(cert_path, format!("cannot read it: {e}")))?;
    let key_pem = std::fs::read(key_path).map_err(|e| tls_error(key_path, format!("cannot read it: {e}")))?;
    let certs = certificates(&chain_pem).map_err(|e| tls_error(cert_path, e))?;
    match certified(certs.clone(), &key_pem) {
        Ok(()) => {}
        Err(Certified::Key(e)) => return Err(tls_error(key_path, e)),
        Err(Certified::Mismatch) => {
            return Err(tls_error(key_path, format!("is not the key of the certificate in `{}`", cert_path.display())));
        }
    }
    // The last certificate of a chain is the CA clients may pin; a lone
    // certificate has none to pin.
    let ca_pin = (certs.len() >= 2).then(|| Sha256::digest(certs.last().expect("two or more")).into());
    Ok(ServerIdentity { chain_pem, key_pem, ca_pin, ca_file: None })
}

/// Why a key does not serve a chain.
enum Certified {
    /// The key is no usable key.
    Key(String),
    /// The key is not the first certificate's.
    Mismatch,
}

/// Whether `key_pem` is the key of the first certificate of `certs`.
fn certified(certs: Vec<CertificateDer<'static>>, key_pem: &[u8]) -> std::result::Result<(), Certified> {
    let blocks = pem::parse_many(key_pem).map_err(|e| Certified::Key(format!("not PEM: {e}")))?;
    let der = blocks
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| Certified::Key("no private key in it".into()))?;
    let key = PrivateKeyDer::try_from(der.into_contents()).map_err(|e| Certified::Key(format!("not a key: {e}")))?;
    match rustls::sign::CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Certified::Mismatch),
        Err(e) => Err(Certified::Key(format!("not a usable key: {e}"))),
    }
}

/// The certificates in `pem`, in order; an error if there are none.
fn certificates(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The DER of the first certificate in `pem`, read from `path`.
fn der_of(pem: &str, path: &Path) -> Result<Vec<u8>> {
    Ok(certificates(pem.as_bytes()).map_err(|e| tls_error(path, e))?.remove(0).to_vec())
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common.trim());
    dn
}

/// Writes `bytes` to `path` through a temporary file of mode `mode` in the
/// same directory and a rename: the file is never there half-written, nor
/// with a looser mode.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".tls-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(MasterError::io(dir))?;
    file.write_all(bytes).map_err(MasterError::io(path))?;
    file.as_file().sync_all().map_err(MasterError::io(path))?;
    file.persist(path).map_err(|e| MasterError::io(path)(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn auto_setup(names: &[&str]) -> TlsSetup {
        TlsSetup::Auto { names: names.iter().map(|n| n.to_string()).collect() }
    }

    fn server_names(dir: &Path) -> BTreeSet<String> {
        let certs = certificates(&std::fs::read(dir.join(SERVER_CERT)).unwrap()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        sans.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) if ip.len() == 4 => {
                    Some(IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string())
                }
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    Some(IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_first_start_makes_a_ca_and_a_server_certificate_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let id = prepare(&auto_setup(&["grid.example.org", "10.1.2.3"]), dir.path()).unwrap().unwrap();
        for (file, mode) in [(CA_CERT, 0o644), (CA_KEY, 0o600), (SERVER_CERT, 0o644), (SERVER_KEY, 0o600)] {
            let meta = std::fs::metadata(dir.path().join(file)).unwrap();
            assert_eq!(meta.mode() & 0o777, mode, "{file}");
        }
        let names = server_names(dir.path());
        for name in ["localhost", "127.0.0.1", "::1", "grid.example.org", "10.1.2.3"] {
            assert!(names.contains(name), "{name} not in {names:?}");
        }
        if let Some(host) = host_name() {
            assert!(names.contains(&host), "{host} not in {names:?}");
        }
        // The chain is the server's certificate, then the CA's; the pin is the CA's.
        let chain = certificates(&id.chain_pem).unwrap();
        let ca = std::fs::read(dir.path().join(CA_CERT)).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].as_ref(), certificates(&ca).unwrap()[0].as_ref());
        assert_eq!(id.ca_pin, Some(grid_core::connect::pin_of_pem(&ca).unwrap()));
        assert_eq!(id.ca_file.as_deref(), Some(dir.path().join(CA_CERT).as_path()));
    }

    #[test]
    fn a_restart_keeps_the_ca_and_a_new_name_gets_a_new_server_certificate_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = prepare(&auto_setup(&[]), dir.path()).unwrap().unwrap();
        let again = prepare(&auto_setup(&[]), dir.path()).unwrap().unwrap();
        assert_eq!(again.ca_pin, first.ca_pin);
        assert_eq!(again.chain_pem, first.chain_pem, "nothing new was asked for");
        assert_eq!(again.key_pem, first.key_pem);

        let named = prepare(&auto_setup(&["grid.example.org"]), dir.path()).unwrap().unwrap();
        assert_eq!(named.ca_pin, first.ca_pin, "the CA, and so the pin, never change");
        assert_ne!(named.chain_pem, first.chain_pem);
        assert!(server_names(dir.path()).contains("grid.example.org"));
        let kept = prepare(&auto_setup(&["GRID.example.org."]), dir.path()).unwrap().unwrap();
        assert_eq!(kept.chain_pem, named.chain_pem, "the same name, written otherwise");
    }

    #[test]
    fn a_bad_name_or_half_a_ca_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let bad = prepare(&auto_setup(&["not a name"]), dir.path()).unwrap_err().to_string();
        assert_eq!(bad, "--tls-name `not a name`: not a DNS name or an IP address");

        prepare(&auto_setup(&[]), dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        let half = prepare(&auto_setup(&[]), dir.path()).unwrap_err().to_string();
        assert!(half.contains("go together and one is missing"), "{half}");
    }

    #[test]
    fn operator_files_are_checked_and_their_chain_s_last_certificate_is_the_pin() {
        let made = tempfile::tempdir().unwrap();
        prepare(&auto_setup(&[]), made.path()).unwrap();
        let (cert, key) = (made.path().join(SERVER_CERT), made.path().join(SERVER_KEY));
        let id = prepare(&TlsSetup::Files { cert: cert.clone(), key: key.clone() }, Path::new("/nonexistent")).unwrap();
        let ca = std::fs::read(made.path().join(CA_CERT)).unwrap();
        assert_eq!(id.unwrap().ca_pin, Some(grid_core::connect::pin_of_pem(&ca).unwrap()));

        // A lone certificate has no CA to pin.
        let lone = made.path().join("lone.pem");
        let first = certificates(&std::fs::read(&cert).unwrap()).unwrap().remove(0);
        std::fs::write(&lone, pem::encode(&pem::Pem::new("CERTIFICATE", first.to_vec()))).unwrap();
        let id = prepare(&TlsSetup::Files { cert: lone.clone(), key: key.clone() }, Path::new("/")).unwrap();
        assert_eq!(id.unwrap().ca_pin, None);

        // The CA's key is not the server certificate's.
        let wrong = TlsSetup::Files { cert: cert.clone(), key: made.path().join(CA_KEY) };
        let e = prepare(&wrong, Path::new("/")).unwrap_err().to_string();
        assert!(e.ends_with(&format!("is not the key of the certificate in `{}`", cert.display())), "{e}");
        let missing = TlsSetup::Files { cert: made.path().join("none.pem"), key };
        let e = prepare(&missing, Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("none.pem`: cannot read it"), "{e}");
    }
}

/// Clients against a live master: who is trusted, and how a refusal reads.
#[cfg(test)]
mod wire {
    use super::*;
    use crate::{Master, MasterConfig};
    use grid_core::connect::{Trust, channel, fetch_ca, pin_of_pem};
    use grid_proto as pb;

    /// A master serving `tls` on a loopback port: its URL (`https://`, or
    /// `http://` when plaintext), its data dir, and what stops it.
    async fn start(tls: TlsSetup) -> (String, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MasterConfig::new(dir.path());
        config.fsync = false;
        let scheme = if tls == TlsSetup::Off { "http" } else { "https" };
        config.tls = tls;
        let master = Master::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(master.serve(listener, async {
            let _ = stopped.await;
        }));
        (url, dir, stop)
    }

    /// Whether a call over `channel` reached the master's service: any
    /// answer from it, a refusal of credentials included, proves the
    /// transport.
    async fn answered(channel: tonic::transport::Channel) -> Result<(), String> {
        let mut client = grid_core::connect::master(channel, None).unwrap();
        match client.list_nodes(pb::ListNodesRequest::default()).await {
            Ok(_) => Ok(()),
            Err(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => Ok(()),
            Err(s) => Err(format!("{:?}: {}", s.code(), grid_core::connect::root_cause(&s))),
        }
    }

    fn ca_of(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join(CA_CERT)).unwrap()
    }

    #[tokio::test]
    async fn a_client_trusting_the_master_s_ca_talks_to_it_and_one_trusting_another_is_refused() {
        let (url, dir, _stop) = start(TlsSetup::Auto { names: vec![] }).await;
        let trust = Trust { ca_pem: Some(ca_of(&dir)), ca_pin: None };
        answered(channel(&url, &trust).await.unwrap()).await.unwrap();
        // `HOST:PORT` means TLS.
        answered(channel(url.trim_start_matches("https://"), &trust).await.unwrap()).await.unwrap();

        let other = tempfile::tempdir().unwrap();
        prepare(&TlsSetup::Auto { names: vec![] }, other.path()).unwrap();
        let stranger = Trust { ca_pem: Some(ca_of(&other)), ca_pin: None };
        let refused = channel(&url, &stranger).await.unwrap_err();
        assert_eq!(
            refused,
            format!("cannot reach master `{url}`: the master's certificate is not signed by the CA given")
        );
    }

    #[tokio::test]
    async fn a_join_token_s_pin_fetches_the_master_s_ca_and_a_wrong_pin_is_refused() {
        let (url, dir, _stop) = start(TlsSetup::Auto { names: vec![] }).await;
        let pin = pin_of_pem(&ca_of(&dir)).unwrap();
        let ca = fetch_ca(&url, &pin).await.unwrap();
        assert_eq!(pin_of_pem(&ca).unwrap(), pin);
        answered(channel(&url, &Trust { ca_pem: None, ca_pin: Some(pin) }).await.unwrap()).await.unwrap();

        let wrong = [7u8; 32];
        let refused = channel(&url, &Trust { ca_pem: None, ca_pin: Some(wrong) }).await.unwrap_err();
        assert!(
            refused.starts_with(&format!("the master at `{url}` offers no CA with the join token's pin")),
            "{refused}"
        );
        assert!(refused.contains(&format!("expected sha256 {}, offered ", hex::encode(wrong))), "{refused}");
        assert!(refused.contains(&hex::encode(pin)), "the CA offered is named: {refused}");
        assert!(refused.ends_with("the join token is for another master, or someone is in between"), "{refused}");
    }

    #[tokio::test]
    async fn plaintext_and_tls_that_meet_each_other_fail_with_a_line_that_says_so() {
        let (url, dir, _stop) = start(TlsSetup::Auto { names: vec![] }).await;
        let plain = url.replace("https://", "http://");
        let refused = match channel(&plain, &Trust::default()).await {
            Ok(channel) => answered(channel).await.unwrap_err(),
            Err(e) => e,
        };
        assert!(
            refused
                .ends_with("a master speaks TLS unless it was started with --insecure: write its URL with `https://`"),
            "{refused}"
        );

        let (plain, _plain_dir, _plain_stop) = start(TlsSetup::Off).await;
        let tls = plain.replace("http://", "https://");
        let trust = Trust { ca_pem: Some(ca_of(&dir)), ca_pin: None };
        let refused = channel(&tls, &trust).await.unwrap_err();
        assert_eq!(
            refused,
            format!(
                "cannot reach master `{tls}`: the master does not speak TLS: if it was started with --insecure, \
                 write its URL with `http://`"
            )
        );
        let pin = pin_of_pem(&ca_of(&dir)).unwrap();
        let refused = fetch_ca(&tls, &pin).await.unwrap_err();
        assert!(
            refused.ends_with(
                "the master does not speak TLS: if it was started with --insecure, write its URL with `http://`"
            ),
            "{refused}"
        );
        answered(channel(&plain, &Trust::default()).await.unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn a_certificate_that_does_not_name_the_host_dialled_is_refused_with_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["elsewhere.example".to_owned()])
            .unwrap()
            .signed_by(&key, &Issuer::new(ca, ca_key))
            .unwrap();
        let (chain, key_file) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
        std::fs::write(&chain, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let (url, _data, _stop) = start(TlsSetup::Files { cert: chain, key: key_file }).await;

        let trust = Trust { ca_pem: Some(ca_cert.pem().into_bytes()), ca_pin: None };
        let refused = channel(&url, &trust).await.unwrap_err();
        assert_eq!(
            refused,
            format!(
                "cannot reach master `{url}`: the master's certificate does not name `127.0.0.1`: reach it by a \
                 name its certificate has, or give it this one (`grid-master --tls-name 127.0.0.1`)"
            )
        );
        let pin = pin_of_pem(ca_cert.pem().as_bytes()).unwrap();
        let refused = fetch_ca(&url, &pin).await.unwrap_err();
        assert!(refused.starts_with(&format!("cannot trust master `{url}`: the master's certificate does not name")));
    }

    #[tokio::test]
    async fn a_master_with_the_operator_s_certificate_is_trusted_through_its_chain() {
        let made = tempfile::tempdir().unwrap();
        prepare(&TlsSetup::Auto { names: vec![] }, made.path()).unwrap();
        let files = TlsSetup::Files { cert: made.path().join(SERVER_CERT), key: made.path().join(SERVER_KEY) };
        let (url, _dir, _stop) = start(files).await;
        let pin = pin_of_pem(&ca_of(&made)).unwrap();
        answered(channel(&url, &Trust { ca_pem: None, ca_pin: Some(pin) }).await.unwrap()).await.unwrap();
    }
}
