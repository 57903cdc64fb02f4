//! A node's standing as users see it: the master's verification flags
//! deciding whom it trusts, the TRUST and CREDIT that `grid-cli nodes`
//! shows, kept across restarts, and an admin clearing a quarantine.

use grid_tests::GridSandbox;
use serde_json::Value;

/// The fields of a node's standing in `grid-cli nodes --json`.
fn standing(node: &Value) -> (Value, Value, Value, Value, Value) {
    let field = |f: &str| node.get(f).cloned().unwrap_or_else(|| panic!("no `{f}` in {node:#}"));
    (field("trusted"), field("trust"), field("credit"), field("quarantined"), field("strikes"))
}

/// The TRUST column of node `name` in `grid-cli nodes` (with `--all`).
fn trust_column(grid: &GridSandbox, name: &str) -> String {
    let table = grid.run(&["nodes", "--all"]);
    table.assert_clean_success();
    let mut lines = table.stdout.lines();
    let header = lines.next().expect("a header");
    let at = header.find("TRUST").unwrap_or_else(|| panic!("no TRUST column: {}", table.stdout));
    let row = lines.find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row for `{name}`: {}", table.stdout));
    row[at..].split_whitespace().next().unwrap_or_default().to_owned()
}

#[test]
fn a_new_node_earns_trust_under_adaptive_verification_and_has_it_with_verification_off() {
    let grid = GridSandbox::builder(1).master_args(&["--verify", "adaptive", "--trust-after", "4"]).start();
    let node = grid.node("node-0");
    assert_eq!(standing(&node), (false.into(), 0.into(), 0.into(), false.into(), 0.into()), "{node:#}");
    assert_eq!(trust_column(&grid, "node-0"), "0/4");

    let grid = GridSandbox::builder(1).master_args(&["--verify", "off"]).start();
    assert_eq!(grid.node("node-0")["trusted"], true);
    assert_eq!(trust_column(&grid, "node-0"), "trusted");
}

#[test]
fn verification_flags_out_of_range_are_refused_at_start() {
    for (flag, value) in [("--max-replicas", "1"), ("--quarantine-after", "0"), ("--untrusted-slots", "0")] {
        let out = std::process::Command::new(grid_tests::bin("grid-master")).args([flag, value]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag), "{flag} {value}");
    }
}

#[test]
fn a_quarantine_is_kept_across_restarts_until_an_admin_clears_it() {
    // It reads the master's SQLite record and files directly.
    if grid_tests::on_postgres() {
        return;
    }
    let mut grid = GridSandbox::builder(0).master_args(&["--verify", "adaptive"]).start();
    // A node an earlier session quarantined, known now only to the record.
    let db = rusqlite::Connection::open(grid.master_dir().join("grid.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO nodes (name, identity, state, first_seen_ms, last_seen_ms, streak, strikes, quarantined, credit)
         VALUES ('rogue', 'id', 'lost', 1, 2, 0, 3, 1, 5000000)",
        [],
    )
    .unwrap();
    drop(db);
    let listed = |grid: &GridSandbox| {
        grid.all_nodes().into_iter().find(|n| n["name"] == "rogue").expect("the recorded node is listed")
    };
    let rogue = listed(&grid);
    assert_eq!(standing(&rogue), (false.into(), 0.into(), 5_000_000.into(), true.into(), 3.into()), "{rogue:#}");
    assert_eq!(trust_column(&grid, "rogue"), "quarantined");

    let cleared = grid.run(&["admin", "nodes", "unquarantine", "rogue"]);
    cleared.assert_clean_success();
    assert_eq!(cleared.stdout.trim(), "node `rogue` may run jobs again");
    let again = grid.run(&["admin", "nodes", "unquarantine", "rogue"]);
    again.assert_clean_success();
    assert_eq!(again.stdout.trim(), "node `rogue` was not quarantined");

    // The clear is in the record: a restarted master keeps it, and the credit.
    grid.restart_master();
    let rogue = listed(&grid);
    assert_eq!(standing(&rogue), (false.into(), 0.into(), 5_000_000.into(), false.into(), 0.into()), "{rogue:#}");
    assert_eq!(trust_column(&grid, "rogue"), "0/10");
}

#[test]
fn clearing_a_node_never_seen_fails_with_one_line() {
    let grid = GridSandbox::builder(0).master_args(&["--verify", "adaptive"]).start();
    grid.run(&["admin", "nodes", "unquarantine", "ghost"]).assert_grid_failure(125, "no node `ghost` has been seen");
}
