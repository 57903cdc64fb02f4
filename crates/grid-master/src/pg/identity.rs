//! One grid, one identity: the secrets every master of a grid on
//! PostgreSQL shares, so that a client or node trusts, and is trusted by,
//! whichever master leads.
//!
//! Table `grid_secrets` holds the key of the tokens' keyed hash
//! (`token-key`), the grid's CA (`ca-cert`, `ca-key`, PEM; only for masters
//! making their own certificates) and the admin token's text
//! (`admin-token`). The first master on a database makes them; every other
//! reads them. Each master then writes `ca.pem` and `ca.key` into its data
//! dir, makes its own server certificate from the CA (its names), and
//! writes `admin.token`, as a master on SQLite does.
//!
//! These rows are written once, by `INSERT … ON CONFLICT DO NOTHING`, and
//! read back: masters starting together all read the same winner, and no
//! master changes them afterwards. So they are not fenced: a standby needs
//! the CA to serve before it leads.

use super::{Pool, db_err};
use crate::error::{MasterError, Result};
use crate::tls::{self, ServerIdentity, TlsSetup};
use grid_core::token::{Token, TokenKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The name of the key of the tokens' keyed hash in `grid_secrets`.
pub const TOKEN_KEY: &str = "token-key";
/// The name of the grid CA's certificate (PEM).
pub const CA_CERT: &str = "ca-cert";
/// The name of the grid CA's key (PEM).
pub const CA_KEY: &str = "ca-key";
/// The name of the admin token's text.
pub const ADMIN_TOKEN: &str = "admin-token";

/// What a master of a grid on PostgreSQL takes from the grid.
#[derive(Debug)]
pub struct SharedIdentity {
    /// What the master serves TLS with: its own server certificate from
    /// the grid's CA, the operator's chain (`--tls-cert`), or `None`
    /// (`--insecure`).
    pub tls: Option<ServerIdentity>,
    /// The key of the tokens' keyed hash, for `Tokens::open_pg`.
    pub token_key: [u8; 32],
    /// The admin token's text, as `admin.token` now holds it.
    pub admin_token: String,
    /// Where `admin.token` is.
    pub admin_file: PathBuf,
}

/// The grid's identity in the database behind `pool`, made if this master
/// is the first: the CA (when `tls` is an automatic setup; the CA already
/// in `data_dir`, if any, is offered first, so that a master moving to
/// PostgreSQL keeps its pin), the token key and the admin token (whose
/// registry row is made with it). Writes `ca.pem`, `ca.key`, this
/// master's server certificate and `admin.token` into `data_dir`.
pub async fn shared_identity(pool: &Pool, data_dir: &Path, tls: &TlsSetup) -> Result<SharedIdentity> {
    let (dir, auto) = (data_dir.to_owned(), matches!(tls, TlsSetup::Auto { .. }));
    // Candidates, used only if no master made these before.
    let offered_ca = blocking(move || {
        crate::data_dir::prepare(&dir)?;
        if !auto {
            return Ok(None);
        }
        Ok(Some(match tls::existing_ca(&dir) {
            Some(ca) => ca,
            None => tls::new_ca()?,
        }))
    })
    .await?;
    let admin = Token::generate();
    let mut offered: Vec<(&str, Vec<u8>)> =
        vec![(TOKEN_KEY, grid_core::token::random_key().to_vec()), (ADMIN_TOKEN, admin.to_string().into_bytes())];
    if let Some((cert, key)) = offered_ca {
        offered.push((CA_CERT, cert.into_bytes()));
        offered.push((CA_KEY, key.into_bytes()));
    }

    let mut client = pool.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(secrets_err)?;
    for (name, value) in &offered {
        tx.execute(
            "INSERT INTO grid_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[name, value],
        )
        .await
        .map_err(secrets_err)?;
    }
    let names = [TOKEN_KEY, ADMIN_TOKEN, CA_CERT, CA_KEY];
    let rows = tx
        .query("SELECT name, value FROM grid_secrets WHERE name = ANY($1)", &[&names.as_slice()])
        .await
        .map_err(secrets_err)?;
    let secrets: HashMap<String, Vec<u8>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let token_key: [u8; 32] = secrets
        .get(TOKEN_KEY)
        .and_then(|k| k.as_slice().try_into().ok())
        .ok_or_else(|| corrupt(TOKEN_KEY, "not a 32-byte key"))?;
    let admin_token = secrets
        .get(ADMIN_TOKEN)
        .and_then(|t| Token::parse(std::str::from_utf8(t).ok()?))
        .ok_or_else(|| corrupt(ADMIN_TOKEN, "not a token"))?;
    // The admin token's row, made with it (the same row from every master).
    let hash = blake3::keyed_hash(&token_key, admin_token.secret.as_bytes());
    tx.execute(
        "INSERT INTO tokens (id, kind, subject, hash, created_ms) VALUES ($1, $2, '', $3, $4) \
         ON CONFLICT (id) DO NOTHING",
        &[&admin_token.id, &TokenKind::Admin.as_str(), &hash.as_bytes().as_slice(), &(crate::model::now_ms() as i64)],
    )
    .await
    .map_err(secrets_err)?;
    tx.commit().await.map_err(secrets_err)?;
    drop(client);
    if admin_token.id == admin.id {
        tracing::info!("this master made the grid's identity in the database");
    }

    let text = |name: &str| -> Result<String> {
        let bytes = secrets.get(name).ok_or_else(|| corrupt(name, "missing"))?;
        String::from_utf8(bytes.clone()).map_err(|_| corrupt(name, "not text"))
    };
    let ca = match tls {
        TlsSetup::Auto { .. } => Some((text(CA_CERT)?, text(CA_KEY)?)),
        _ => None,
    };
    let (dir, setup, admin_text) = (data_dir.to_owned(), tls.clone(), admin_token.to_string());
    blocking(move || {
        let tls = match (&setup, ca) {
            (TlsSetup::Auto { names }, Some((cert, key))) => Some(tls::from_ca(&dir, &cert, &key, names)?),
            _ => tls::prepare(&setup, &dir)?,
        };
        let admin_file = dir.join(crate::auth::tokens::ADMIN_FILE);
        let current = std::fs::read_to_string(&admin_file).ok();
        if current.as_deref().map(str::trim) != Some(admin_text.as_str()) {
            crate::auth::write_private(&admin_file, format!("{admin_text}\n").as_bytes(), true)?;
            tracing::info!(path = %admin_file.display(), "admin token written from the database");
        }
        Ok(SharedIdentity { tls, token_key, admin_token: admin_text, admin_file })
    })
    .await
}

fn secrets_err(e: tokio_postgres::Error) -> MasterError {
    MasterError::Db(format!("grid secrets: {e}"))
}

fn corrupt(name: &str, why: &str) -> MasterError {
    MasterError::Db(format!("grid secret `{name}` in the database: {why}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| MasterError::Internal(format!("identity: {e}")))?
}
