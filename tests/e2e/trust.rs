//! Who may talk to the master: TLS by default, bearer tokens of three kinds,
//! nodes that join with a join token carrying the CA's pin and keep a
//! credential of their own, and revocation.

use crate::guests::{self, guest};
use grid_tests::rogue::{self, Code, OnAssign, RogueClient, RogueNode, registration};
use grid_tests::{GridSandbox, Run, Spawned, example};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn the_master_keeps_its_secrets_to_its_owner() {
    // It reads the master's SQLite record and files directly.
    if grid_tests::on_postgres() {
        return;
    }
    let grid = GridSandbox::start(1);
    let dir = grid.master_dir();
    for secret in ["admin.token", "ca.key", "server.key", "token.key"] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    assert!(dir.join("ca.pem").is_file());
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    // Only a keyed hash of the secret is kept: the record never holds it.
    let db = std::fs::read(dir.join("grid.db")).unwrap();
    let secret = token.trim().rsplit('_').next().unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "the admin secret is in grid.db");
    // The node keeps its credential to itself too.
    assert_eq!(mode(&grid.dir().join("node-0/node.token")), 0o600);
}

#[test]
fn calls_without_the_right_token_are_refused_before_any_work() {
    let grid = GridSandbox::start(1);
    let hello = std::fs::read(example("hello")).unwrap();
    let hash = rogue::sha256_hex(&hello);
    let nobody = RogueClient::connect(&grid.access(None));
    let forged = RogueClient::connect(&grid.access(Some(&format!("grid_{}_{}", "0".repeat(16), "0".repeat(64)))));
    for client in [&nobody, &forged] {
        assert_eq!(client.upload(&hello).unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(client.list_jobs("").unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(client.submit(rogue::job(&hash)).unwrap_err().code(), Code::Unauthenticated);
    }
    // Nothing was stored.
    let admin = RogueClient::connect(&grid.admin());
    assert_eq!(admin.missing_modules(vec![hash.clone()]).unwrap(), [hash]);
    // The CLI says which in one line.
    let run = grid.run_as("not-a-token", &["jobs"]);
    run.assert_grid_failure(125, "grid: the master refused the credentials");
    let tenant = grid.tenant("alice", &[]);
    grid.run_as(&tenant, &["admin", "tenants"]).assert_grid_failure(125, "grid: permission denied");
    let mut cmd = grid.cli(&["jobs"]);
    cmd.env_remove("GRID_TOKEN");
    Run::from(cmd.output().unwrap()).assert_grid_failure(125, "no token");
}

#[test]
fn a_node_needs_a_node_credential() {
    let grid = GridSandbox::start(0);
    // No token at all.
    let refused = RogueNode::try_connect(&grid.access(None), registration("thief", vec![]), OnAssign::Hold);
    assert_eq!(refused.err().map(|s| s.code()), Some(Code::Unauthenticated));
    // A tenant's token, or the admin's, is not a node's.
    let tenant = grid.tenant("alice", &[]);
    for token in [tenant.as_str(), grid.admin_token()] {
        let refused = RogueNode::try_connect(&grid.access(Some(token)), registration("thief", vec![]), OnAssign::Hold);
        assert_eq!(refused.err().map(|s| s.code()), Some(Code::PermissionDenied));
    }
    // A join token is only for joining.
    let join = grid.join_token(&[]);
    let refused = RogueNode::try_connect(&grid.access(Some(&join)), registration("thief", vec![]), OnAssign::Hold);
    assert!(refused.is_err());
    // A grid-node with no credential and no join token says what to do.
    let run = Run::from(grid.bare_node_command("lost", "lost").output().unwrap());
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("--join"), "{run:#?}");
    assert!(grid.nodes().is_empty());
}

#[test]
fn a_node_rejoins_with_its_saved_credential_after_a_restart() {
    let mut grid = GridSandbox::start(1);
    grid.kill_node("node-0");
    grid.wait_node_gone("node-0");
    // No join token this time: the credential in its cache dir serves.
    let node = Spawned::start(&mut grid.bare_node_command("node-0", "node-0"));
    grid.wait_until("node-0 back", |s| s.nodes().iter().any(|n| n["name"] == "node-0").then_some(()));
    let module = grid.wat("hello", &guests::hello());
    let run = grid.run(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    node.signal("KILL");
}

#[test]
fn a_revoked_node_is_dropped_at_once_and_cannot_come_back() {
    let mut grid = GridSandbox::start(1);
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let id = grid.submit(&[sleeper.to_str().unwrap()]);
    grid.wait_until("the job runs", |s| (s.status(&id)["state"] == "running").then_some(()));
    grid.run(&["admin", "nodes", "revoke", "node-0"]).assert_clean_success();
    // Its session ends, and its job goes back to the queue.
    assert!(!grid.wait_node_exit("node-0"), "a revoked node should exit with an error");
    assert!(grid.node_log("node-0").contains("revoked"), "{}", grid.node_log("node-0"));
    assert!(grid.nodes().is_empty());
    let job = grid.status(&id);
    assert_eq!(job["state"], "queued", "{job:#}");
    // Its saved credential no longer opens the door.
    let again = Run::from(grid.bare_node_command("node-0", "node-0").output().unwrap());
    assert_ne!(again.code, Some(0), "{again:#?}");
    assert!(again.stderr.contains("revoked"), "{again:#?}");
    // A rogue node's session ends too.
    let rogue = RogueNode::connect(&grid.node_access("rogue"), registration("rogue", vec![]), OnAssign::Hold);
    grid.run(&["admin", "nodes", "revoke", "rogue"]).assert_clean_success();
    assert_eq!(rogue.wait_ended().code(), Code::PermissionDenied);
    grid.run(&["cancel", &id]).assert_clean_success();
}

#[test]
fn a_join_token_with_the_wrong_pin_is_refused() {
    let grid = GridSandbox::start(0);
    let join = grid.join_token(&[]);
    let (head, pin) = join.rsplit_once('_').unwrap();
    let wrong = format!("{head}_{}", if pin.starts_with('0') { "1" } else { "0" }.repeat(64));
    let mut cmd = grid.bare_node_command("impostor", "impostor");
    cmd.args(["--join", &wrong]);
    let run = Run::from(cmd.output().unwrap());
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("pin") || run.stderr.contains("fingerprint"), "{run:#?}");
    assert!(!grid.dir().join("impostor/node.token").exists());
    // A malformed join token is refused before any connection.
    let mut cmd = grid.bare_node_command("impostor", "impostor");
    cmd.args(["--join", "gridjoin_nonsense"]);
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, Some(2), "{run:#?}");
}

#[test]
fn a_join_token_is_used_up_and_expires() {
    let grid = GridSandbox::start(0);
    let once = grid.join_token(&["--uses", "1"]);
    rogue::join(&grid.access(Some(&once)), "first").unwrap();
    let second = rogue::join(&grid.access(Some(&once)), "second").unwrap_err();
    assert_eq!(second.code(), Code::Unauthenticated, "{second:?}");
    let brief = grid.join_token(&["--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let late = rogue::join(&grid.access(Some(&brief)), "late").unwrap_err();
    assert_eq!(late.code(), Code::Unauthenticated, "{late:?}");
    // A name held by a live credential is not given twice.
    let any = grid.join_token(&[]);
    let taken = rogue::join(&grid.access(Some(&any)), "first").unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
}

#[test]
fn plaintext_and_tls_do_not_mix() {
    let grid = GridSandbox::start(1);
    // A plaintext client of a TLS master fails in one line, and soon.
    let http = grid.url().replacen("https://", "http://", 1);
    let mut cmd = grid.cli(&["jobs"]);
    cmd.args(["--master", &http]);
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert_eq!(run.grid_lines().len(), 1, "{run:#?}");
    // A client that trusts another CA is refused by its own TLS check.
    let other = GridSandbox::start(0);
    let mut cmd = grid.cli(&["jobs"]);
    cmd.env("GRID_CA", other.ca().unwrap());
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert_eq!(run.grid_lines().len(), 1, "{run:#?}");
}

#[test]
fn an_insecure_master_serves_plaintext_and_says_so() {
    let grid = GridSandbox::builder(1).master_args(&["--insecure"]).start();
    assert!(grid.url().starts_with("http://"));
    let module = grid.wat("hello", &guests::hello());
    let run = grid.run(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    let warned = grid.master_log().lines().filter(|l| l.contains("plaintext")).count();
    assert_eq!(warned, 1, "{}", grid.master_log());
    // Tokens are still required.
    let mut cmd = grid.cli(&["jobs"]);
    cmd.env_remove("GRID_TOKEN");
    Run::from(cmd.output().unwrap()).assert_grid_failure(125, "the master refused the credentials");
}

#[test]
fn login_saves_the_master_token_and_ca_for_later_commands() {
    let grid = GridSandbox::start(1);
    let alice = grid.tenant("alice", &[]);
    let config = grid.dir().join("alice-config");
    let bare = |args: &[&str]| {
        let mut cmd = Command::new(grid_tests::bin("grid-cli"));
        cmd.args(args)
            .env_remove("GRID_MASTER")
            .env_remove("GRID_TOKEN")
            .env_remove("GRID_CA")
            .env("XDG_CONFIG_HOME", &config)
            .stdin(std::process::Stdio::null());
        Run::from(cmd.output().unwrap())
    };
    let ca = grid.ca().unwrap();
    // A wrong token is not saved.
    let run = bare(&["login", grid.url(), "--token", "grid_nope", "--ca", ca.to_str().unwrap()]);
    assert_eq!(run.code, Some(125), "{run:#?}");
    let run = bare(&["login", grid.url(), "--token", &alice, "--ca", ca.to_str().unwrap()]);
    run.assert_clean_success();
    let saved = config.join("wasm-grid/config.json");
    assert_eq!(mode(&saved), 0o600);
    assert!(!std::fs::read_to_string(&saved).unwrap().is_empty());
    let module = grid.wat("hello", &guests::hello());
    let run = bare(&["run", module.to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    let jobs = bare(&["jobs", "--json"]).json();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs:#}");
    assert_eq!(jobs[0]["tenant"], "alice");
    bare(&["logout"]).assert_clean_success();
    assert!(!saved.exists());
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked() {
    let grid = GridSandbox::start(1);
    let alice = grid.tenant("alice", &[]);
    let listing = grid.run(&["admin", "tokens", "--json"]);
    let tokens = listing.json();
    assert!(!listing.stdout.contains(alice.rsplit('_').next().unwrap()), "a secret in the listing");
    let id = alice.split('_').nth(1).unwrap();
    let row = tokens.as_array().unwrap().iter().find(|t| t["id"] == id).cloned().expect("alice's token listed");
    assert_eq!(row["kind"], "tenant", "{row:#}");
    let module = grid.wat("hello", &guests::hello());
    grid.run_as(&alice, &["run", module.to_str().unwrap()]).assert_clean_success();
    grid.run(&["admin", "tokens", "revoke", id]).assert_clean_success();
    grid.run_as(&alice, &["jobs"]).assert_grid_failure(125, "revoked");
}
