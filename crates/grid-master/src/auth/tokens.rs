//! The token registry: every token and tenant the master knows, in memory
//! for a synchronous check on every call, and in tables `tokens` and
//! `tenants` of `grid.db`, or of the grid's PostgreSQL database (where
//! every master of the grid finds them).
//!
//! Only a keyed hash of each secret is kept (`blake3::keyed_hash` with the
//! 32-byte key in `DATA_DIR/token.key`, or in the database's secrets): a
//! copy of the record alone lets nobody call. Writes go to the record
//! first, then to memory, one writer at a time; they block, so callers on
//! async threads run them through `state::blocking` (on PostgreSQL a write
//! on an async thread would panic).

use super::caller::Caller;
use super::records::{self, Entry, SqliteRecord, TokenRecord, load_key, write_private};
pub use super::records::{ADMIN_FILE, KEY_FILE, Tenant, TokenInfo};
use crate::error::{MasterError, Result};
use crate::model::now_ms;
use grid_core::TenantQuota;
use grid_core::token::{JoinToken, Token, TokenKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The most tenant and join tokens kept (revoked and expired ones are
/// forgotten first). Node credentials and admin tokens count apart, so that
/// nodes joining through a reusable join token never lock the admin out.
pub const MAX_TOKENS: usize = 10_000;
/// The most node credentials kept (revoked ones are forgotten first).
pub const MAX_NODE_CREDENTIALS: usize = 10_000;
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
    /// The record; held by one writer at a time, for the whole of its
    /// check and write.
    db: Mutex<Box<dyn TokenRecord>>,
    /// The most tenant and join tokens, and the most node credentials.
    bounds: (usize, usize),
}

impl Tokens {
    /// The registry of the master whose data is in `dir`: its key (made on
    /// first start), and the tokens and tenants recorded in `grid.db`.
    pub fn open(dir: &Path) -> Result<Self> {
        let key = load_key(dir)?;
        let conn = records::open(dir)?;
        let (tokens, tenants) = records::load(&conn)?;
        Ok(Self::with_record(key, Box::new(SqliteRecord(conn)), tokens, tenants))
    }

    /// The registry of a grid on PostgreSQL: `key` (the grid's, from
    /// `pg::identity`), and every token and tenant the database holds now
    /// (a master opens it when it becomes the leader). Its writes are
    /// fenced: once `fence` has lost the lease, each is refused with
    /// `NotLeader`.
    pub async fn open_pg(
        pool: crate::pg::Pool,
        fence: std::sync::Arc<crate::pg::Fence>,
        key: [u8; 32],
    ) -> Result<Self> {
        let (record, tokens, tenants) = super::pg_records::PgRecord::open(pool, fence).await?;
        Ok(Self::with_record(key, Box::new(record), tokens, tenants))
    }

    fn with_record(
        key: [u8; 32],
        record: Box<dyn TokenRecord>,
        tokens: HashMap<String, Entry>,
        tenants: BTreeMap<String, Tenant>,
    ) -> Self {
        let inner = Inner { tokens, tenants, used: HashSet::new() };
        Self { key, inner: Mutex::new(inner), db: Mutex::new(record), bounds: (MAX_TOKENS, MAX_NODE_CREDENTIALS) }
    }

    /// This registry with lower bounds on its tokens (for tests).
    #[cfg(test)]
    pub(crate) fn bounded(self, tokens: usize, nodes: usize) -> Self {
        Self { bounds: (tokens, nodes), ..self }
    }

    /// Reads token `id` from the record again, if memory does not hold it.
    fn reload(&self, id: &str) -> Result<()> {
        if self.lock().tokens.contains_key(id) {
            return Ok(());
        }
        if let Some(entry) = self.writer().token(id)? {
            self.lock().tokens.insert(entry.info.id.clone(), entry);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Box<dyn TokenRecord>> {
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

    /// Room for one more token of `kind`: revoked and expired ones of its
    /// class (node credentials, or tenant and join tokens) are forgotten
    /// first; past that class's bound, refused. Admin tokens are never
    /// refused: a master holds one at a time.
    fn make_room(&self, conn: &dyn TokenRecord, kind: TokenKind) -> Result<()> {
        let (bound, what) = match kind {
            TokenKind::Admin => return Ok(()),
            TokenKind::Node => (self.bounds.1, "node credentials"),
            TokenKind::Tenant | TokenKind::Join => (self.bounds.0, "live tenant and join tokens"),
        };
        let node = kind == TokenKind::Node;
        let same = |i: &TokenInfo| i.kind != TokenKind::Admin && (i.kind == TokenKind::Node) == node;
        let count = |inner: &Inner| inner.tokens.values().filter(|e| same(&e.info)).count();
        if count(&self.lock()) < bound {
            return Ok(());
        }
        let now = now_ms();
        let dead: Vec<String> = self
            .lock()
            .tokens
            .values()
            .map(|e| &e.info)
            .filter(|i| same(i))
            .filter(|i| i.revoked || i.expires_ms.is_some_and(|x| x <= now) || i.uses_left == Some(0))
            .map(|i| i.id.clone())
            .collect();
        if !dead.is_empty() {
            conn.delete_tokens(&dead)?;
        }
        let mut inner = self.lock();
        for id in &dead {
            inner.tokens.remove(id);
        }
        if count(&inner) >= bound {
            return Err(MasterError::Busy(format!(
                "the master holds {bound} {what}, the most it keeps: revoke some first"
            )));
        }
        Ok(())
    }

    fn insert(&self, conn: &dyn TokenRecord, info: TokenInfo, secret: &str) -> Result<()> {
        let hash = self.hash(secret);
        conn.insert_token(&info, &hash)?;
        self.lock().tokens.insert(info.id.clone(), Entry { info, hash });
        Ok(())
    }

    /// A new token like `shape` (its id and time of making are the new
    /// token's own).
    fn issue_with(&self, conn: &dyn TokenRecord, shape: TokenInfo) -> Result<(TokenInfo, Token)> {
        self.make_room(conn, shape.kind)?;
        let token = Token::generate();
        let info = TokenInfo { id: token.id.clone(), created_ms: now_ms(), ..shape };
        self.insert(conn, info.clone(), &token.secret)?;
        Ok((info, token))
    }

    /// A live token of `kind` for `subject`, with no bounds, to shape one.
    fn shape(kind: TokenKind, subject: &str) -> TokenInfo {
        TokenInfo::fresh(String::new(), kind, subject)
    }

    /// A new admin token.
    pub fn issue_admin(&self) -> Result<Token> {
        let conn = self.writer();
        Ok(self.issue_with(&**conn, Self::shape(TokenKind::Admin, ""))?.1)
    }

    /// A new token for existing tenant `tenant`.
    pub fn issue_tenant(&self, tenant: &str) -> Result<(TokenInfo, Token)> {
        let conn = self.writer();
        if !self.lock().tenants.contains_key(tenant) {
            return Err(no_tenant(tenant));
        }
        self.issue_with(&**conn, Self::shape(TokenKind::Tenant, tenant))
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
        let shape =
            TokenInfo { owner, expires_ms: Some(expires), uses_left: uses, ..Self::shape(TokenKind::Join, &subject) };
        self.issue_with(&**conn, shape)
    }

    /// A new credential for a public node named `name`, revoking any it had
    /// before: for a node the master itself starts.
    pub fn issue_node(&self, name: &str) -> Result<Token> {
        check_name("node", name)?;
        let conn = self.writer();
        self.revoke_where(&**conn, |i| i.kind == TokenKind::Node && i.subject == name)?;
        Ok(self.issue_with(&**conn, Self::shape(TokenKind::Node, name))?.1)
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
            conn.set_uses_left(join_id, left)?;
            if let Some(e) = self.lock().tokens.get_mut(join_id) {
                e.info.uses_left = Some(left);
            }
        }
        let shape = TokenInfo { owner, joined_by: Some(join_id.to_owned()), ..Self::shape(TokenKind::Node, name) };
        self.issue_with(&**conn, shape)
    }

    /// Revokes every live token `pick` picks; returns them.
    fn revoke_where(&self, conn: &dyn TokenRecord, pick: impl Fn(&TokenInfo) -> bool) -> Result<Vec<TokenInfo>> {
        let picked: Vec<TokenInfo> =
            self.lock().tokens.values().map(|e| &e.info).filter(|i| !i.revoked && pick(i)).cloned().collect();
        if !picked.is_empty() {
            conn.revoke_tokens(&picked.iter().map(|i| i.id.clone()).collect::<Vec<_>>())?;
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
        Ok(self.revoke_where(&**conn, |i| i.id == id)?.pop())
    }

    /// Revokes every live credential of the node named `name`; returns how
    /// many there were.
    pub fn revoke_node(&self, name: &str) -> Result<usize> {
        let conn = self.writer();
        Ok(self.revoke_where(&**conn, |i| i.kind == TokenKind::Node && i.subject == name)?.len())
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
        if name == super::DEFAULT_TENANT {
            return Err(MasterError::InvalidArgument(format!(
                "tenant name `{name}` is reserved for the admin's own jobs: pick another"
            )));
        }
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
        conn.insert_tenant(&tenant)?;
        self.lock().tenants.insert(name.to_owned(), tenant.clone());
        let (info, token) = self.issue_with(&**conn, Self::shape(TokenKind::Tenant, name))?;
        Ok((tenant, info, token))
    }

    /// Holds existing tenant `name` to `quota` from now on.
    pub fn set_quota(&self, name: &str, quota: TenantQuota) -> Result<Tenant> {
        let conn = self.writer();
        if !self.lock().tenants.contains_key(name) {
            return Err(no_tenant(name));
        }
        conn.set_quota(name, &quota)?;
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
        conn.write_last_used(&used)
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
        // The new token is made and written before the old ones go: a
        // failure on the way leaves the admin with a token that works.
        let conn = self.writer();
        let (_, token) = self.issue_with(&**conn, Self::shape(TokenKind::Admin, ""))?;
        drop(conn);
        write_private(&path, format!("{token}\n").as_bytes(), true)?;
        let conn = self.writer();
        let old = self.revoke_where(&**conn, |i| i.kind == TokenKind::Admin && i.id != token.id)?;
        if !old.is_empty() {
            tracing::info!(tokens = old.len(), "earlier admin tokens revoked");
        }
        Ok((token.to_string(), path, true))
    }
}

fn no_tenant(name: &str) -> MasterError {
    let shown = grid_core::text::cut(name, MAX_NAME);
    MasterError::NotFound(format!("no tenant `{shown}`"))
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
