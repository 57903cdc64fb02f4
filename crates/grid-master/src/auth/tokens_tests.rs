//! The token registry's own tests: hashes, join tokens, tenants, bounds
//! and the admin token.

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
    assert_eq!(
        refusal(tokens.create_tenant("default", quota)),
        "tenant name `default` is reserved for the admin's own jobs: pick another"
    );
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

#[test]
fn node_credentials_never_crowd_out_the_admins_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::open(dir.path()).unwrap().bounded(3, 2);
    let (join, _) = tokens.issue_join(None, None, None).unwrap();
    for name in ["n1", "n2"] {
        tokens.join(&join.id, name).unwrap();
    }
    assert!(refusal(tokens.join(&join.id, "n3")).contains("holds 2 node credentials"));
    // Tenants and their tokens are still made.
    tokens.create_tenant("alice", TenantQuota::default()).unwrap();
    tokens.issue_tenant("alice").unwrap();
    assert!(refusal(tokens.issue_tenant("alice")).contains("holds 3 live tenant and join tokens"));
    tokens.issue_admin().unwrap();

    // Each node credential names its join token; revoking the join
    // token leaves its nodes be.
    let listed = tokens.list();
    let nodes: Vec<_> = listed.iter().filter(|t| t.kind == TokenKind::Node).collect();
    assert!(nodes.iter().all(|t| t.joined_by.as_deref() == Some(join.id.as_str())), "{nodes:?}");
    tokens.revoke(&join.id).unwrap();
    assert!(tokens.list().iter().filter(|t| t.kind == TokenKind::Node).all(|t| !t.revoked));
    drop(tokens);
    let again = Tokens::open(dir.path()).unwrap();
    let n1 = again.list().into_iter().find(|t| t.subject == "n1").unwrap();
    assert_eq!(n1.joined_by, Some(join.id));
}

#[test]
fn a_rotated_admin_token_is_issued_before_the_old_one_goes() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens::open(dir.path()).unwrap();
    let (old, path, _) = tokens.admin_token(dir.path()).unwrap();
    std::fs::remove_file(&path).unwrap();
    // The file cannot be written: the old admin token still works.
    std::fs::create_dir(&path).unwrap();
    assert!(tokens.admin_token(dir.path()).is_err());
    assert_eq!(tokens.authenticate(&old).unwrap(), Caller::Admin);
}
