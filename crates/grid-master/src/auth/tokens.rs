//! The token registry: every token and tenant the master knows, in memory
//! for a synchronous check on every call, and in tables `tokens` and
//! `tenants` of `grid.db`.
//!
//! Only a keyed hash of each secret is kept (`blake3::keyed_hash` with the
//! 32-byte key in `DATA_DIR/token.key`): a copy of the record alone lets
//! nobody call. Writes go to the record first, then to memory, one writer
//! at a time; callers on async threads run them through `state::blocking`.

use super::caller::Caller;
use super::records::{self, Entry, db_err, load_key, quota_columns, write_private};
pub use super::records::{ADMIN_FILE, KEY_FILE, Tenant, TokenInfo};
use crate::error::{MasterError, Result};
use crate::model::now_ms;
use grid_core::TenantQuota;
use grid_core::token::{JoinToken, Token, TokenKind};
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The most tokens kept (revoked and expired ones are forgotten first).
pub const MAX_TOKENS: usize = 10_000;
/// The most tenants.
pub const MAX_TENANTS: usize = 10_000;
/// The longest tenant or node name.
pub const MAX_NAME: usize = 64;
/// How long a join token lasts when its maker names no time.
pub const DEFAULT_JOIN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often the times tokens were last used are written to the record.
pub const LAST_USED_WRITTEN: Duration = Duration::from_secs(60);

/// Refuses a tenant or node name that is not 1 to 64 of `[A-Za-z0-9._-]`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(ok) {
        let shown = grid_core::text::cut(name, MAX_NAME);
        return Err(MasterError::InvalidArgument(format!(
            "{what} name `{shown}` is not 1 to {MAX_NAME} of letters, digits, `.`, `_` and `-`"
        )));
    }
    Ok(())
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Entry>,
    tenants: BTreeMap<String, Tenant>,
    /// Tokens used since their last use was last written.
    used: HashSet<String>,
}

/// The registry of tokens and tenants.
pub struct Tokens {
    key: [u8; 32],
    inner: Mutex<Inner>,
    /// The record's connection; held by one writer at a time, for the whole
    /// of its check and write.
    db: Mutex<Connection>,
}

impl Tokens {
    /// The registry of the master whose data is in `dir`: its key (made on
    /// first start), and the tokens and tenants recorded in `grid.db`.
    pub fn open(dir: &Path) -> Result<Self> {
        let key = load_key(dir)?;
        let conn = records::open(dir)?;
        let (tokens, tenants) = records::load(&conn)?;
        let inner = Inner { tokens, tenants, used: HashSet::new() };
        Ok(Self { key, inner: Mutex::new(inner), db: Mutex::new(conn) })
    }

    /// Reads token `id` from the record again, if memory does not hold it.
    fn reload(&self, id: &str) -> Result<()> {
        if self.lock().tokens.contains_key(id) {
            return Ok(());
        }
        let conn = self.writer();
        let mut stmt = conn.prepare(&format!("{} WHERE id = ?1", records::TOKEN_ROW)).map_err(db_err)?;
        let mut rows = stmt.query_map([id], records::token_row).map_err(db_err)?;
        if let Some(row) = rows.next() {
            let entry = row.map_err(db_err)?;
            self.lock().tokens.insert(entry.info.id.clone(), entry);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hash(&self, secret: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.key, secret.as_bytes())
    }

    /// The caller behind a bearer token's text (a token, or a join token
    /// with its pin): checks it against the registry and notes its use.
    pub fn authenticate(&self, text: &str) -> Result<Caller> {
        let unknown = || MasterError::Unauthenticated("the token is not one this master issued".into());
        let token = match Token::parse(text) {
            Some(t) => t,
            None => JoinToken::parse(text).ok_or_else(unknown)?.token,
        };
        let presented = self.hash(&token.secret);
        let now = now_ms();
        let mut inner = self.lock();
        let entry = inner.tokens.get_mut(&token.id).ok_or_else(unknown)?;
        // `blake3::Hash`'s `==` compares in constant time: how long a
        // refusal takes tells nothing of how much of a secret was right.
        if entry.hash != presented {
            return Err(unknown());
        }
        let info = &mut entry.info;
        if info.revoked {
            return Err(MasterError::Unauthenticated("the token was revoked".into()));
        }
        if info.expires_ms.is_some_and(|e| e <= now) {
            return Err(MasterError::Unauthenticated(format!("the {} token expired", info.kind)));
        }
        if info.uses_left == Some(0) {
            return Err(MasterError::Unauthenticated(format!("the {} token has no uses left", info.kind)));
        }
        info.last_used_ms = now;
        let caller = match info.kind {
            TokenKind::Admin => Caller::Admin,
            TokenKind::Tenant => Caller::Tenant(info.subject.clone()),
            TokenKind::Node => {
                Caller::Node { token_id: info.id.clone(), name: info.subject.clone(), owner: info.owner.clone() }
            }
            TokenKind::Join => Caller::Join { token_id: info.id.clone() },
        };
        inner.used.insert(token.id);
        Ok(caller)
    }

    /// Room for one more token: revoked and expired ones are forgotten
    /// first; past that, refused.
    fn make_room(&self, conn: &Connection) -> Result<()> {
        if self.lock().tokens.len() < MAX_TOKENS {
            return Ok(());
        }
        let now = now_ms();
        let dead: Vec<String> = self
            .lock()
            .tokens
            .values()
            .filter(|e| e.info.revoked || e.info.expires_ms.is_some_and(|x| x <= now) || e.info.uses_left == Some(0))
            .map(|e| e.info.id.clone())
            .collect();
        for id in &dead {
            conn.execute("DELETE FROM tokens WHERE id = ?1", [id]).map_err(db_err)?;
        }
        let mut inner = self.lock();
        for id in &dead {
            inner.tokens.remove(id);
        }
        if inner.tokens.len() >= MAX_TOKENS {
            return Err(MasterError::Busy(format!(
                "the master holds {MAX_TOKENS} live tokens, the most it keeps: revoke some first"
            )));
        }
        Ok(())
    }

    fn insert(&self, conn: &Connection, info: TokenInfo, secret: &str) -> Result<()> {
        let hash = self.hash(secret);
        conn.execute(
            "INSERT INTO tokens (id, kind, subject, owner, hash, created_ms, last_used_ms, expires_ms, uses_left, \
             revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, 0)",
            params![
                info.id,
                info.kind.as_str(),
                info.subject,
                info.owner,
                hash.as_bytes().as_slice(),
                info.created_ms as i64,
                info.expires_ms.map(|v| v as i64),
                info.uses_left.map(i64::from),
            ],
        )
        .map_err(db_err)?;
        self.lock().tokens.insert(info.id.clone(), Entry { info, hash });
        Ok(())
    }

    fn issue_with(
        &self,
        conn: &Connection,
        kind: TokenKind,
        subject: &str,
        owner: Option<String>,
        expires_ms: Option<u64>,
        uses_left: Option<u32>,
    ) -> Result<(TokenInfo, Token)> {
        self.make_room(conn)?;
        let token = Token::generate();
        let info = TokenInfo {
            id: token.id.clone(),
            kind,
            subject: subject.to_owned(),
            owner,
            created_ms: now_ms(),
            last_used_ms: 0,
            expires_ms,
            uses_left,
            revoked: false,
        };
        self.insert(conn, info.clone(), &token.secret)?;
        Ok((info, token))
    }

    /// A new admin token.
    pub fn issue_admin(&self) -> Result<Token> {
        let conn = self.writer();
        Ok(self.issue_with(&conn, TokenKind::Admin, "", None, None, None)?.1)
    }

    /// A new token for existing tenant `tenant`.
    pub fn issue_tenant(&self, tenant: &str) -> Result<(TokenInfo, Token)> {
        let conn = self.writer();
        if !self.lock().tenants.contains_key(tenant) {
            return Err(no_tenant(tenant));
        }
        self.issue_with(&conn, TokenKind::Tenant, tenant, None, None, None)
    }

    /// A new join token, lasting `ttl` (24 hours if `None`), good for
    /// `uses` nodes (any number if `None`); its nodes serve tenant `owner`
    /// alone (an existing tenant), or all if `None`.
    pub fn issue_join(
        &self,
        uses: Option<u32>,
        ttl: Option<Duration>,
        owner: Option<String>,
    ) -> Result<(TokenInfo, Token)> {
        let conn = self.writer();
        if let Some(owner) = &owner
            && !self.lock().tenants.contains_key(owner)
        {
            return Err(no_tenant(owner));
        }
        let ttl = ttl.unwrap_or(DEFAULT_JOIN_TTL).min(Duration::from_secs(10 * 365 * 24 * 3600));
        let expires = now_ms().saturating_add(ttl.as_millis() as u64);
        let subject = owner.clone().unwrap_or_default();
        self.issue_with(&conn, TokenKind::Join, &subject, owner, Some(expires), uses)
    }

    /// A new credential for a public node named `name`, revoking any it had
    /// before: for a node the master itself starts.
    pub fn issue_node(&self, name: &str) -> Result<Token> {
        check_name("node", name)?;
        let conn = self.writer();
        self.revoke_where(&conn, |i| i.kind == TokenKind::Node && i.subject == name)?;
        Ok(self.issue_with(&conn, TokenKind::Node, name, None, None, None)?.1)
    }

    /// Trades a use of join token `join_id` for a credential of a node
    /// named `name`: refused if the join token is no longer good, or if
    /// another live credential holds the name.
    pub fn join(&self, join_id: &str, name: &str) -> Result<(TokenInfo, Token)> {
        check_name("node", name)?;
        let conn = self.writer();
        let (owner, uses_left) = {
            let inner = self.lock();
            let gone = || MasterError::Unauthenticated("the join token is no longer good".into());
            let join = inner.tokens.get(join_id).map(|e| &e.info).ok_or_else(gone)?;
            if join.kind != TokenKind::Join
                || join.revoked
                || join.uses_left == Some(0)
                || join.expires_ms.is_some_and(|e| e <= now_ms())
            {
                return Err(gone());
            }
            let held = inner
                .tokens
                .values()
                .any(|e| e.info.kind == TokenKind::Node && !e.info.revoked && e.info.subject == name);
            if held {
                return Err(MasterError::Conflict(format!(
                    "a node named `{name}` is already enrolled: pick another --name, or revoke that node first"
                )));
            }
            (join.owner.clone(), join.uses_left.map(|u| u - 1))
        };
        if let Some(left) = uses_left {
            conn.execute("UPDATE tokens SET uses_left = ?2 WHERE id = ?1", params![join_id, left]).map_err(db_err)?;
            if let Some(e) = self.lock().tokens.get_mut(join_id) {
                e.info.uses_left = Some(left);
            }
        }
        self.issue_with(&conn, TokenKind::Node, name, owner, None, None)
    }

    /// Revokes every live token `pick` picks; returns them.
    fn revoke_where(&self, conn: &Connection, pick: impl Fn(&TokenInfo) -> bool) -> Result<Vec<TokenInfo>> {
        let picked: Vec<TokenInfo> =
            self.lock().tokens.values().map(|e| &e.info).filter(|i| !i.revoked && pick(i)).cloned().collect();
        for info in &picked {
            conn.execute("UPDATE tokens SET revoked = 1 WHERE id = ?1", [&info.id]).map_err(db_err)?;
        }
        let mut inner = self.lock();
        for info in &picked {
            if let Some(e) = inner.tokens.get_mut(&info.id) {
                e.info.revoked = true;
            }
        }
        Ok(picked)
    }

    /// Revokes token `id`; returns what it was if it was live, `None` if it
    /// was revoked already; refused for an unknown id and for the admin
    /// token (rotated by deleting `admin.token` and restarting instead).
    pub fn revoke(&self, id: &str) -> Result<Option<TokenInfo>> {
        let conn = self.writer();
        match self.lock().tokens.get(id) {
            None => {
                let shown = grid_core::text::cut(id, 64);
                return Err(MasterError::NotFound(format!("no token `{shown}`")));
            }
            Some(e) if e.info.kind == TokenKind::Admin => {
                return Err(MasterError::Refused(format!(
                    "the admin token is not revoked by a call: delete `{ADMIN_FILE}` in the master's data dir and \
                     restart it for a new one"
                )));
            }
            Some(_) => {}
        }
        Ok(self.revoke_where(&conn, |i| i.id == id)?.pop())
    }

    /// Revokes every live credential of the node named `name`; returns how
    /// many there were.
    pub fn revoke_node(&self, name: &str) -> Result<usize> {
        let conn = self.writer();
        Ok(self.revoke_where(&conn, |i| i.kind == TokenKind::Node && i.subject == name)?.len())
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        let mut out: Vec<_> = self.lock().tokens.values().map(|e| e.info.clone()).collect();
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Whether token `id` is known and not revoked.
    pub fn is_live(&self, id: &str) -> bool {
        self.lock().tokens.get(id).is_some_and(|e| !e.info.revoked)
    }

    /// The tenant each node with a live credential serves alone, by the
    /// node's name: one pass over the registry. A node missing from it is
    /// public.
    pub fn node_owners(&self) -> HashMap<String, String> {
        let inner = self.lock();
        let live = inner.tokens.values().map(|e| &e.info).filter(|i| i.kind == TokenKind::Node && !i.revoked);
        live.filter_map(|i| Some((i.subject.clone(), i.owner.clone()?))).collect()
    }

    /// Makes tenant `name` with `quota`, and a first token for it.
    pub fn create_tenant(&self, name: &str, quota: TenantQuota) -> Result<(Tenant, TokenInfo, Token)> {
        check_name("tenant", name)?;
        let conn = self.writer();
        {
            let inner = self.lock();
            if inner.tenants.contains_key(name) {
                return Err(MasterError::Conflict(format!("tenant `{name}` exists already")));
            }
            if inner.tenants.len() >= MAX_TENANTS {
                return Err(MasterError::Busy(format!("the master holds {MAX_TENANTS} tenants, the most it keeps")));
            }
        }
        let tenant = Tenant { name: name.to_owned(), quota, created_ms: now_ms() };
        let q = quota_columns(&quota);
        conn.execute(
            "INSERT INTO tenants (name, created_ms, max_running, max_queued, fuel_per_hour, fuel_burst, \
             max_job_fuel, max_job_memory, max_job_timeout_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![name, tenant.created_ms as i64, q[0], q[1], q[2], q[3], q[4], q[5], q[6]],
        )
        .map_err(db_err)?;
        self.lock().tenants.insert(name.to_owned(), tenant.clone());
        let (info, token) = self.issue_with(&conn, TokenKind::Tenant, name, None, None, None)?;
        Ok((tenant, info, token))
    }

    /// Holds existing tenant `name` to `quota` from now on.
    pub fn set_quota(&self, name: &str, quota: TenantQuota) -> Result<Tenant> {
        let conn = self.writer();
        if !self.lock().tenants.contains_key(name) {
            return Err(no_tenant(name));
        }
        let q = quota_columns(&quota);
        conn.execute(
            "UPDATE tenants SET max_running = ?2, max_queued = ?3, fuel_per_hour = ?4, fuel_burst = ?5, \
             max_job_fuel = ?6, max_job_memory = ?7, max_job_timeout_ms = ?8 WHERE name = ?1",
            params![name, q[0], q[1], q[2], q[3], q[4], q[5], q[6]],
        )
        .map_err(db_err)?;
        let mut inner = self.lock();
        let tenant = inner.tenants.get_mut(name).ok_or_else(|| no_tenant(name))?;
        tenant.quota = quota;
        Ok(tenant.clone())
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.lock().tenants.values().cloned().collect()
    }

    /// Whether tenant `name` exists.
    pub fn has_tenant(&self, name: &str) -> bool {
        self.lock().tenants.contains_key(name)
    }

    /// Writes when each token used since the last write was last used.
    pub fn write_last_used(&self) -> Result<()> {
        let conn = self.writer();
        let used: Vec<(String, u64)> = {
            let mut inner = self.lock();
            let ids: Vec<String> = inner.used.drain().collect();
            ids.into_iter().filter_map(|id| inner.tokens.get(&id).map(|e| (id, e.info.last_used_ms))).collect()
        };
        if used.is_empty() {
            return Ok(());
        }
        let tx = conn.unchecked_transaction().map_err(db_err)?;
        for (id, ms) in &used {
            tx.execute("UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1", params![id, *ms as i64]).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// The admin token in `dir`'s `admin.token`, written with a new token
    /// on first start, or when the file is gone or holds no live admin
    /// token: then every other admin token is revoked, so that deleting the
    /// file and restarting the master rotates the admin token.
    pub fn admin_token(&self, dir: &Path) -> Result<(String, PathBuf, bool)> {
        let path = dir.join(ADMIN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // Another process on this dir may have made it since this
                // registry was read.
                if let Some(t) = Token::parse(&text) {
                    self.reload(&t.id)?;
                }
                if let Some(t) = Token::parse(&text)
                    && self.is_live(&t.id)
                    && matches!(self.authenticate(&t.to_string()), Ok(Caller::Admin))
                {
                    return Ok((t.to_string(), path, false));
                }
                tracing::warn!(path = %path.display(), "the admin token file holds no live admin token; writing a new one");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MasterError::io(&path)(e)),
        }
        let conn = self.writer();
        let old = self.revoke_where(&conn, |i| i.kind == TokenKind::Admin)?;
        if !old.is_empty() {
            tracing::info!(tokens = old.len(), "earlier admin tokens revoked");
        }
        let token = self.issue_with(&conn, TokenKind::Admin, "", None, None, None)?.1.to_string();
        drop(conn);
        write_private(&path, format!("{token}\n").as_bytes(), true)?;
        Ok((token, path, true))
    }
}

fn no_tenant(name: &str) -> MasterError {
    let shown = grid_core::text::cut(name, MAX_NAME);
    MasterError::NotFound(format!("no tenant `{shown}`"))
}

#[cfg(test)]
mod tests {
    use super::records::recorded_hash;
    use super::*;
    use grid_core::FuelQuota;
    use std::os::unix::fs::PermissionsExt;

    fn refusal(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn only_a_keyed_hash_of_each_secret_is_kept_and_a_token_is_found_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        let (_, info, token) = tokens.create_tenant("alice", TenantQuota::default()).unwrap();
        assert_eq!(tokens.authenticate(&token.to_string()).unwrap(), Caller::Tenant("alice".into()));

        let key = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let kept = recorded_hash(&dir.path().join("grid.db"), &info.id).unwrap();
        let key: [u8; 32] = key.try_into().unwrap();
        assert_eq!(kept, blake3::keyed_hash(&key, token.secret.as_bytes()).as_bytes().to_vec());
        assert_ne!(kept, blake3::hash(token.secret.as_bytes()).as_bytes().to_vec(), "the hash is keyed");

        // A wrong secret under a known id, an unknown id, and garbage.
        let mut forged = token.clone();
        forged.secret = forged.secret.chars().rev().collect();
        let other = Token::generate();
        for bad in [forged.to_string(), other.to_string(), "hello".into()] {
            assert_eq!(refusal(tokens.authenticate(&bad)), "the token is not one this master issued");
        }

        // Another start reads the same key and tokens.
        drop(tokens);
        let again = Tokens::open(dir.path()).unwrap();
        assert_eq!(again.authenticate(&token.to_string()).unwrap(), Caller::Tenant("alice".into()));
        assert_eq!(refusal(again.create_tenant("alice", TenantQuota::default())), "tenant `alice` exists already");
    }

    #[test]
    fn revoked_expired_and_used_up_join_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        tokens.create_tenant("bob", TenantQuota::default()).unwrap();

        let (_, expired) = tokens.issue_join(None, Some(Duration::ZERO), None).unwrap();
        assert_eq!(refusal(tokens.authenticate(&expired.to_string())), "the join token expired");

        let (info, once) = tokens.issue_join(Some(1), None, Some("bob".into())).unwrap();
        let caller = tokens.authenticate(&once.to_string()).unwrap();
        assert_eq!(caller, Caller::Join { token_id: info.id.clone() });
        let (node, credential) = tokens.join(&info.id, "n1").unwrap();
        assert_eq!((node.kind, node.subject.as_str(), node.owner.as_deref()), (TokenKind::Node, "n1", Some("bob")));
        assert_eq!(tokens.node_owners().get("n1").map(String::as_str), Some("bob"));
        let expected = Caller::Node { token_id: node.id.clone(), name: "n1".into(), owner: Some("bob".into()) };
        assert_eq!(tokens.authenticate(&credential.to_string()).unwrap(), expected);
        assert_eq!(refusal(tokens.authenticate(&once.to_string())), "the join token has no uses left");
        assert_eq!(refusal(tokens.join(&info.id, "n2")), "the join token is no longer good");

        let (info, many) = tokens.issue_join(None, None, None).unwrap();
        // A name another live credential holds is refused, until revoked.
        assert!(refusal(tokens.join(&info.id, "n1")).contains("a node named `n1` is already enrolled"));
        assert!(refusal(tokens.join(&info.id, "no/slash")).contains("is not 1 to 64 of letters"));
        assert_eq!(tokens.revoke_node("n1").unwrap(), 1);
        assert_eq!(refusal(tokens.authenticate(&credential.to_string())), "the token was revoked");
        let (again, _) = tokens.join(&info.id, "n1").unwrap();
        assert_eq!(again.owner, None, "a public join token makes public nodes");
        assert_eq!(tokens.node_owners().get("n1"), None);

        assert!(tokens.revoke(&info.id).unwrap().is_some());
        assert!(tokens.revoke(&info.id).unwrap().is_none(), "revoked once");
        assert_eq!(refusal(tokens.authenticate(&many.to_string())), "the token was revoked");
        assert!(refusal(tokens.issue_join(None, None, Some("carol".into()))).contains("no tenant `carol`"));
        // The listing shows no secret.
        let listed = format!("{:?}", tokens.list());
        assert!(!listed.contains(&many.secret) && listed.contains(&many.id));
    }

    #[test]
    fn tenants_keep_their_quotas_and_names_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        let quota = TenantQuota {
            max_running: Some(4),
            fuel: Some(FuelQuota { rate_per_hour: 1_000, burst: 1_000 }),
            max_job_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        for bad in ["", "a b", "ü", &"x".repeat(65), "a:b"] {
            assert!(refusal(tokens.create_tenant(bad, quota)).contains("is not 1 to 64"), "{bad:?}");
        }
        tokens.create_tenant("t-1.x_y", quota).unwrap();
        let changed = TenantQuota { max_queued: Some(9), ..quota };
        tokens.set_quota("t-1.x_y", changed).unwrap();
        assert!(refusal(tokens.set_quota("nobody", quota)).contains("no tenant `nobody`"));
        drop(tokens);
        let again = Tokens::open(dir.path()).unwrap();
        assert_eq!(again.tenants()[0].quota, changed);
    }

    #[test]
    fn the_admin_token_is_written_once_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        // Another process on the same dir, started at the same time.
        let beside = Tokens::open(dir.path()).unwrap();
        let (token, path, new) = tokens.admin_token(dir.path()).unwrap();
        assert!(new);
        assert_eq!(beside.admin_token(dir.path()).unwrap(), (token.clone(), path.clone(), false));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
        assert_eq!(tokens.authenticate(&token).unwrap(), Caller::Admin);
        drop(tokens);
        let again = Tokens::open(dir.path()).unwrap();
        assert_eq!(again.admin_token(dir.path()).unwrap(), (token.clone(), path.clone(), false));
        let id = Token::parse(&token).unwrap().id;
        assert!(refusal(again.revoke(&id)).contains("delete `admin.token`"));
        // Its last use reaches the record.
        again.write_last_used().unwrap();
        assert!(Tokens::open(dir.path()).unwrap().list().iter().any(|t| t.id == id && t.last_used_ms > 0));
        // Deleting the file and starting again rotates it.
        std::fs::remove_file(&path).unwrap();
        let (rotated, _, new) = again.admin_token(dir.path()).unwrap();
        assert!(new && rotated != token);
        assert_eq!(refusal(again.authenticate(&token)), "the token was revoked");
        assert_eq!(again.authenticate(&rotated).unwrap(), Caller::Admin);
    }
}
