//! What the token registry keeps, and where: token and tenant rows in
//! tables `tokens` and `tenants` (of `grid.db`, through [`SqliteRecord`],
//! or of the grid's PostgreSQL database, through `pg_records`), the key of
//! the keyed hash in `token.key`, and private files written whole.

use crate::error::{MasterError, Result};
use grid_core::token::TokenKind;
use grid_core::{FuelQuota, TenantQuota};
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// The file holding the key of the keyed hash.
pub const KEY_FILE: &str = "token.key";
/// The file holding the admin token.
pub const ADMIN_FILE: &str = "admin.token";

/// What the registry knows of a token; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub kind: TokenKind,
    /// The tenant (tenant tokens), the node's name (node credentials), or
    /// the owner a join token gives its nodes (empty for public).
    pub subject: String,
    /// The tenant a node credential's node serves alone, or a join token's.
    pub owner: Option<String>,
    pub created_ms: u64,
    /// 0 if never used.
    pub last_used_ms: u64,
    pub expires_ms: Option<u64>,
    /// Uses left of a join token with a bound.
    pub uses_left: Option<u32>,
    pub revoked: bool,
    /// The join token a node credential was traded for (`None` for other
    /// kinds, and for a node the master itself starts).
    pub joined_by: Option<String>,
}

impl TokenInfo {
    /// A live token of `kind` for `subject`, made now, with no bounds.
    pub fn fresh(id: String, kind: TokenKind, subject: &str) -> Self {
        Self {
            id,
            kind,
            subject: subject.to_owned(),
            owner: None,
            created_ms: crate::model::now_ms(),
            last_used_ms: 0,
            expires_ms: None,
            uses_left: None,
            revoked: false,
            joined_by: None,
        }
    }
}

/// A tenant and its quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub quota: TenantQuota,
    pub created_ms: u64,
}

/// A token as the registry keeps it: what it is, and its secret's keyed hash.
pub(super) struct Entry {
    pub(super) info: TokenInfo,
    pub(super) hash: blake3::Hash,
}

pub(super) fn db_err(e: rusqlite::Error) -> MasterError {
    MasterError::Db(format!("tokens: {e}"))
}

/// Writes `bytes` to a file at `path` readable by its owner only, whole or
/// not at all (a reader never sees it half written). With `clobber` false,
/// an existing file is left as it is: `Ok(false)`.
pub(crate) fn write_private(path: &Path, bytes: &[u8], clobber: bool) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut f = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(MasterError::io(dir))?;
    f.write_all(bytes).and_then(|_| f.as_file().sync_all()).map_err(MasterError::io(path))?;
    let written = if clobber { f.persist(path).map(drop) } else { f.persist_noclobber(path).map(drop) };
    match written {
        Ok(()) => Ok(true),
        Err(e) if !clobber && e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(MasterError::io(path)(e.error)),
    }
}

/// The key of the keyed hash in `dir`, made on first start.
pub(super) fn load_key(dir: &Path) -> Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|b: Vec<u8>| {
            MasterError::Internal(format!("`{}` holds {} bytes, not a 32-byte key", path.display(), b.len()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Another master starting on the same dir may have made it first.
            if write_private(&path, &grid_core::token::random_key(), false)? {
                tracing::info!(path = %path.display(), "key of the token hashes written");
            }
            load_key(dir)
        }
        Err(e) => Err(MasterError::io(path)(e)),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    owner TEXT,
    hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL DEFAULT 0,
    expires_ms INTEGER,
    uses_left INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    joined_by TEXT
);
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    max_running INTEGER,
    max_queued INTEGER,
    fuel_per_hour INTEGER,
    fuel_burst INTEGER,
    max_job_fuel INTEGER,
    max_job_memory INTEGER,
    max_job_timeout_ms INTEGER
);";

pub(super) const TOKEN_ROW: &str = "SELECT id, kind, subject, owner, hash, created_ms, last_used_ms, expires_ms, uses_left, revoked, \
                                  joined_by FROM tokens";

pub(super) fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let kind: String = r.get(1)?;
    let hash: Vec<u8> = r.get(4)?;
    // A row whose hash is not 32 bytes matches no secret.
    let hash = <[u8; 32]>::try_from(hash).unwrap_or([0; 32]);
    let known = TokenKind::parse(&kind);
    let info = TokenInfo {
        id: r.get(0)?,
        // A kind this master does not know is taken as revoked.
        kind: known.unwrap_or(TokenKind::Join),
        subject: r.get(2)?,
        owner: r.get(3)?,
        created_ms: r.get::<_, i64>(5)? as u64,
        last_used_ms: r.get::<_, i64>(6)? as u64,
        expires_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        uses_left: r.get::<_, Option<i64>>(8)?.map(|v| v as u32),
        revoked: r.get::<_, bool>(9)? || known.is_none(),
        joined_by: r.get(10)?,
    };
    Ok(Entry { info, hash: blake3::Hash::from_bytes(hash) })
}

pub(super) fn quota_columns(q: &TenantQuota) -> [Option<i64>; 7] {
    [
        q.max_running.map(i64::from),
        q.max_queued.map(i64::from),
        q.fuel.map(|f| f.rate_per_hour as i64),
        q.fuel.map(|f| f.burst as i64),
        q.max_job_fuel.map(|v| v as i64),
        q.max_job_memory.map(|v| v as i64),
        q.max_job_timeout.map(|t| t.as_millis() as i64),
    ]
}

/// The registry's connection to `dir`'s `grid.db`, its tables made.
pub(super) fn open(dir: &Path) -> Result<Connection> {
    let conn = Connection::open(dir.join("grid.db")).map_err(db_err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    // A record made before node credentials noted their join token.
    let has_joined_by: bool = conn
        .query_row("SELECT COUNT(*) FROM pragma_table_info('tokens') WHERE name = 'joined_by'", [], |r| r.get(0))
        .map_err(db_err)?;
    if !has_joined_by {
        // Another master on the same dir may have added it just now.
        match conn.execute_batch("ALTER TABLE tokens ADD COLUMN joined_by TEXT") {
            Err(e) if !e.to_string().contains("duplicate column") => return Err(db_err(e)),
            _ => {}
        }
    }
    Ok(conn)
}

/// Every token and tenant the record holds.
pub(super) fn load(conn: &Connection) -> Result<(HashMap<String, Entry>, BTreeMap<String, Tenant>)> {
    let mut tokens = HashMap::new();
    let mut stmt = conn.prepare(TOKEN_ROW).map_err(db_err)?;
    for row in stmt.query_map([], token_row).map_err(db_err)? {
        let entry = row.map_err(db_err)?;
        tokens.insert(entry.info.id.clone(), entry);
    }
    let mut tenants = BTreeMap::new();
    let mut stmt = conn.prepare(TENANT_ROW).map_err(db_err)?;
    for row in stmt.query_map([], tenant_row).map_err(db_err)? {
        let t = row.map_err(db_err)?;
        tenants.insert(t.name.clone(), t);
    }
    Ok((tokens, tenants))
}

const TENANT_ROW: &str = "SELECT name, created_ms, max_running, max_queued, fuel_per_hour, fuel_burst, max_job_fuel, \
                          max_job_memory, max_job_timeout_ms FROM tenants";

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    let opt = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u64));
    let (rate, burst) = (opt(4)?, opt(5)?);
    Ok(Tenant {
        name: r.get(0)?,
        created_ms: r.get::<_, i64>(1)? as u64,
        quota: TenantQuota {
            max_running: opt(2)?.map(|v| v as u32),
            max_queued: opt(3)?.map(|v| v as u32),
            fuel: rate.map(|rate| FuelQuota { rate_per_hour: rate, burst: burst.unwrap_or(rate) }),
            max_job_fuel: opt(6)?,
            max_job_memory: opt(7)?,
            max_job_timeout: opt(8)?.map(Duration::from_millis),
        },
    })
}

/// Where the registry writes: one implementation per database. Each call
/// is one write the registry has decided on; its in-memory state changes
/// only once the call succeeded. Calls block: callers on async threads run
/// the registry through `state::blocking`.
pub(super) trait TokenRecord: Send {
    /// Records a new token.
    fn insert_token(&self, info: &TokenInfo, hash: &blake3::Hash) -> Result<()>;
    /// Forgets tokens `ids`.
    fn delete_tokens(&self, ids: &[String]) -> Result<()>;
    /// Marks tokens `ids` revoked.
    fn revoke_tokens(&self, ids: &[String]) -> Result<()>;
    /// Notes that join token `id` has `left` uses left.
    fn set_uses_left(&self, id: &str, left: u32) -> Result<()>;
    /// Records a new tenant.
    fn insert_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// Holds tenant `name` to `quota`.
    fn set_quota(&self, name: &str, quota: &TenantQuota) -> Result<()>;
    /// Notes when each token was last used, in one transaction.
    fn write_last_used(&self, used: &[(String, u64)]) -> Result<()>;
    /// Token `id` as the record holds it now.
    fn token(&self, id: &str) -> Result<Option<Entry>>;
}

/// The registry's tables in `grid.db`.
pub(super) struct SqliteRecord(pub(super) Connection);

impl TokenRecord for SqliteRecord {
    fn insert_token(&self, info: &TokenInfo, hash: &blake3::Hash) -> Result<()> {
        self.0
            .execute(
                "INSERT INTO tokens (id, kind, subject, owner, hash, created_ms, last_used_ms, expires_ms, \
                 uses_left, revoked, joined_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, 0, ?9)",
                rusqlite::params![
                    info.id,
                    info.kind.as_str(),
                    info.subject,
                    info.owner,
                    hash.as_bytes().as_slice(),
                    info.created_ms as i64,
                    info.expires_ms.map(|v| v as i64),
                    info.uses_left.map(i64::from),
                    info.joined_by,
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn delete_tokens(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.0.execute("DELETE FROM tokens WHERE id = ?1", [id]).map_err(db_err)?;
        }
        Ok(())
    }

    fn revoke_tokens(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.0.execute("UPDATE tokens SET revoked = 1 WHERE id = ?1", [id]).map_err(db_err)?;
        }
        Ok(())
    }

    fn set_uses_left(&self, id: &str, left: u32) -> Result<()> {
        self.0
            .execute("UPDATE tokens SET uses_left = ?2 WHERE id = ?1", rusqlite::params![id, left])
            .map_err(db_err)?;
        Ok(())
    }

    fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        let q = quota_columns(&tenant.quota);
        self.0
            .execute(
                "INSERT INTO tenants (name, created_ms, max_running, max_queued, fuel_per_hour, fuel_burst, \
                 max_job_fuel, max_job_memory, max_job_timeout_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![tenant.name, tenant.created_ms as i64, q[0], q[1], q[2], q[3], q[4], q[5], q[6]],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn set_quota(&self, name: &str, quota: &TenantQuota) -> Result<()> {
        let q = quota_columns(quota);
        self.0
            .execute(
                "UPDATE tenants SET max_running = ?2, max_queued = ?3, fuel_per_hour = ?4, fuel_burst = ?5, \
                 max_job_fuel = ?6, max_job_memory = ?7, max_job_timeout_ms = ?8 WHERE name = ?1",
                rusqlite::params![name, q[0], q[1], q[2], q[3], q[4], q[5], q[6]],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn write_last_used(&self, used: &[(String, u64)]) -> Result<()> {
        let tx = self.0.unchecked_transaction().map_err(db_err)?;
        for (id, ms) in used {
            tx.execute("UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1", rusqlite::params![id, *ms as i64])
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn token(&self, id: &str) -> Result<Option<Entry>> {
        let mut stmt = self.0.prepare(&format!("{TOKEN_ROW} WHERE id = ?1")).map_err(db_err)?;
        let mut rows = stmt.query_map([id], token_row).map_err(db_err)?;
        rows.next().transpose().map_err(db_err)
    }
}

/// The hash the record at `db` holds for token `id` (for tests).
#[cfg(test)]
pub(crate) fn recorded_hash(db: &Path, id: &str) -> Option<Vec<u8>> {
    use rusqlite::OptionalExtension;
    let conn = Connection::open(db).ok()?;
    conn.query_row("SELECT hash FROM tokens WHERE id = ?1", [id], |r| r.get(0)).optional().ok()?
}
