//! One grid, one identity: masters on one PostgreSQL database share the
//! CA, the admin token, and every tenant and node token, so clients and
//! nodes trust, and are trusted by, whichever master they reach.

use grid_tests::GridSandbox;

#[test]
fn a_second_master_on_the_database_is_trusted_and_trusts_as_the_first() {
    let url = grid_testpg::shared().fresh_database().expect("a test database");
    let mut one = GridSandbox::builder(1).master_args(&["--database", &url]).start();
    let alice = one.tenant("alice", &[]);
    one.run_as(&alice, &["jobs", "--json"]).assert_clean_success();
    one.kill_node("node-0");

    // The first master stops (giving its lease up); the second takes over
    // the database.
    one.signal_master("TERM");
    assert_eq!(one.wait_master_exit(std::time::Duration::from_secs(30)), Some(0));
    let mut two = GridSandbox::builder(0).master_args(&["--database", &url]).start();
    assert_eq!(two.admin_token(), one.admin_token(), "both wrote the grid's admin token");
    let ca = |grid: &GridSandbox| std::fs::read(grid.ca().unwrap()).unwrap();
    assert_eq!(ca(&two), ca(&one), "both serve certificates from the grid's CA");
    assert_ne!(
        std::fs::read(two.master_dir().join("server.pem")).unwrap(),
        std::fs::read(one.master_dir().join("server.pem")).unwrap(),
        "each master has a server certificate of its own"
    );

    // The tenant made through the first master calls the second.
    let jobs = two.run_as(&alice, &["jobs", "--json"]);
    jobs.assert_clean_success();
    assert!(jobs.json().as_array().unwrap().is_empty());
    assert_ne!(two.run_as("not-a-token", &["jobs", "--json"]).code, Some(0));

    // The node that joined through the first master serves the second with
    // its credential, and runs a job there.
    two.add_node_from("node-0", &one.dir().join("node-0"));
    let run = two.run(&["run", grid_tests::example("hello").to_str().unwrap()]);
    run.assert_clean_success();
    assert_eq!(two.node("node-0")["name"], "node-0");
}
