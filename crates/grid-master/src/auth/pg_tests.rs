//! The token registry on PostgreSQL: what it writes survives a reopen (as
//! a new leader opens it), a fenced registry writes nothing, and masters on
//! one database share one identity.

use crate::auth::{Caller, Tokens};
use crate::error::MasterError;
use crate::pg::{self, Fence, Pool};
use crate::tls::TlsSetup;
use grid_core::token::TokenKind;
use grid_core::{FuelQuota, TenantQuota};
use std::sync::Arc;
use std::time::Duration;

/// A fresh database, migrated.
async fn database() -> Pool {
    let url = tokio::task::spawn_blocking(|| grid_testpg::shared().fresh_database()).await.unwrap().unwrap();
    let pool = pg::connect(&url).await.unwrap();
    pg::migrate(&pool).await.unwrap();
    pool
}

/// A fence of master `name` holding the lease at `epoch`.
async fn leading(pool: &Pool, name: &str, epoch: i64) -> Arc<Fence> {
    let fence = Fence::new(name);
    pool.get()
        .await
        .unwrap()
        .execute(
            "UPDATE grid_lease SET holder = $1, epoch = $2, expires_at = now() + interval '1 hour' WHERE id = 1",
            &[&name, &epoch],
        )
        .await
        .unwrap();
    fence.hold(epoch as u64);
    fence
}

/// Runs `f` on a blocking thread, as the master's callers do.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_tenants_and_quotas_written_on_postgres_are_what_the_next_leader_opens() {
    let pool = database().await;
    let fence = leading(&pool, "m1", 1).await;
    let key = grid_core::token::random_key();
    let tokens = Arc::new(Tokens::open_pg(pool.clone(), fence, key).await.unwrap());
    let quota = TenantQuota {
        max_running: Some(3),
        fuel: Some(FuelQuota { rate_per_hour: 1000, burst: 2000 }),
        max_job_timeout: Some(Duration::from_secs(9)),
        ..TenantQuota::default()
    };
    let written = tokens.clone();
    let (alice, revoked, join, node, used) = blocking(move || {
        let t = written;
        let (_, _, alice) = t.create_tenant("alice", quota).unwrap();
        t.create_tenant("bob", TenantQuota::default()).unwrap();
        t.set_quota("bob", TenantQuota { max_queued: Some(7), ..TenantQuota::default() }).unwrap();
        let (revoked, _) = t.issue_tenant("bob").unwrap();
        t.revoke(&revoked.id).unwrap();
        let (join, join_token) = t.issue_join(Some(2), None, Some("alice".into())).unwrap();
        let (_, node) = t.join(&join.id, "n1").unwrap();
        assert_eq!(t.authenticate(&join_token.to_string()).unwrap(), Caller::Join { token_id: join.id.clone() });
        t.write_last_used().unwrap();
        (alice, revoked, join, node, join_token)
    })
    .await;
    drop(used);

    // Another master takes over and opens what the database holds.
    let fence = leading(&pool, "m2", 2).await;
    let again = Arc::new(Tokens::open_pg(pool.clone(), fence, key).await.unwrap());
    assert_eq!(again.authenticate(&alice.to_string()).unwrap(), Caller::Tenant("alice".into()));
    let expected = Caller::Node { token_id: node.id.clone(), name: "n1".into(), owner: Some("alice".into()) };
    assert_eq!(again.authenticate(&node.to_string()).unwrap(), expected);
    let listed = again.list();
    let find = |id: &str| listed.iter().find(|i| i.id == id).unwrap().clone();
    assert!(find(&revoked.id).revoked);
    let join_now = find(&join.id);
    assert_eq!((join_now.uses_left, join_now.kind), (Some(1), TokenKind::Join));
    assert!(join_now.last_used_ms > 0, "when it was last used was written");
    assert_eq!(find(&node.id).joined_by.as_deref(), Some(join.id.as_str()));
    let tenants = again.tenants();
    assert_eq!(tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(tenants[0].quota, quota);
    assert_eq!(tenants[1].quota.max_queued, Some(7));
    // A name taken on the first master is taken on the second.
    let refused = blocking(move || again.create_tenant("alice", TenantQuota::default()).unwrap_err()).await;
    assert_eq!(refused.to_string(), "tenant `alice` exists already");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_whose_master_lost_the_lease_writes_nothing() {
    let pool = database().await;
    let fence = leading(&pool, "m1", 1).await;
    let key = grid_core::token::random_key();
    let tokens = Arc::new(Tokens::open_pg(pool.clone(), fence.clone(), key).await.unwrap());
    // Another master takes the lease.
    leading(&pool, "m2", 2).await;
    let refused = blocking(move || tokens.create_tenant("carol", TenantQuota::default()).unwrap_err()).await;
    assert!(matches!(refused, MasterError::NotLeader(_)), "{refused:?}");
    assert_eq!(refused.to_string(), "master `m1` no longer holds the lease; its write was refused");
    assert!(fence.is_lost());
    let fence = leading(&pool, "m2", 2).await;
    let fresh = Tokens::open_pg(pool, fence, key).await.unwrap();
    assert!(fresh.tenants().is_empty(), "the refused write left nothing behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_starting_together_on_one_database_share_one_ca_one_key_and_one_admin_token() {
    let pool = database().await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let auto = |name: &str| TlsSetup::Auto { names: vec![name.to_owned()] };
    let (tls_one, tls_two) = (auto("one.example"), auto("two.example"));
    let (a, b) = tokio::join!(
        pg::identity::shared_identity(&pool, one.path(), &tls_one),
        pg::identity::shared_identity(&pool, two.path(), &tls_two),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.token_key, b.token_key);
    assert_eq!(a.admin_token, b.admin_token);
    let read = |dir: &tempfile::TempDir, file: &str| std::fs::read(dir.path().join(file)).unwrap();
    assert_eq!(read(&one, "ca.pem"), read(&two, "ca.pem"));
    assert_eq!(read(&one, "admin.token"), read(&two, "admin.token"));
    assert_eq!(String::from_utf8(read(&one, "admin.token")).unwrap().trim(), a.admin_token);
    let (ta, tb) = (a.tls.unwrap(), b.tls.unwrap());
    assert_eq!(ta.ca_pin, tb.ca_pin);
    assert_ne!(ta.chain_pem, tb.chain_pem, "each master has a server certificate of its own");
    assert!(String::from_utf8_lossy(&read(&two, "server.pem")).contains("BEGIN CERTIFICATE"));

    // The admin token is in the registry, and a later master with the
    // operator's certificate still shares the key and the admin token.
    let fence = leading(&pool, "m1", 1).await;
    let tokens = Tokens::open_pg(pool.clone(), fence, a.token_key).await.unwrap();
    assert_eq!(tokens.authenticate(&a.admin_token).unwrap(), Caller::Admin);
    let three = tempfile::tempdir().unwrap();
    let c = pg::identity::shared_identity(&pool, three.path(), &TlsSetup::Off).await.unwrap();
    assert_eq!((c.token_key, c.admin_token.as_str(), c.tls.is_none()), (a.token_key, a.admin_token.as_str(), true));
    assert!(!three.path().join("ca.pem").exists(), "no CA for a plaintext master");

    // Deleting `admin.token` rotates nothing on PostgreSQL: it is written again.
    std::fs::remove_file(one.path().join("admin.token")).unwrap();
    let again = pg::identity::shared_identity(&pool, one.path(), &auto("one.example")).await.unwrap();
    assert_eq!(again.admin_token, a.admin_token);
    assert_eq!(String::from_utf8(read(&one, "admin.token")).unwrap().trim(), a.admin_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_master_on_a_database_offers_the_ca_its_data_dir_has() {
    let pool = database().await;
    let dir = tempfile::tempdir().unwrap();
    crate::tls::prepare(&TlsSetup::Auto { names: vec![] }, dir.path()).unwrap();
    let before = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let id = pg::identity::shared_identity(&pool, dir.path(), &TlsSetup::Auto { names: vec![] }).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), before, "the pin nodes hold still works");
    assert_eq!(id.tls.unwrap().ca_pin, Some(grid_core::connect::pin_of_pem(&before).unwrap()));
}
