//! The dashboard in a real browser: headless chromium, driven through
//! chromedriver, against a real master serving HTTP (`--http`) and real
//! nodes. Screenshots of the main pages go to `target/screenshots/`.
//!
//! The elements the tests find carry `data-test` attributes:
//! - `whoami` (who is logged in), `nav`, `logout`, `live` (its
//!   `data-mode` is `on` with the event stream, `poll` without);
//! - login view: `login-form`, `login-token`, `login-submit`, `login-error`;
//! - jobs: `job-table`, `job-row` (with `data-job` = id and `data-state`),
//!   `job-state`, `job-link`, `jobs-empty`, `state-filter`, `job-search`;
//! - one job: `job-id`, `job-state`, `job-waiting`, `job-result`,
//!   `job-outcome`, `job-node`, `job-output` (`data-ended` once the log
//!   stream ended), `job-cancel`, `page-error` (a page the API refused);
//! - submit: `submit-form`, `submit-file`, `submit-args`, `submit-stdin`,
//!   `submit-env`, `submit-fuel`, `submit-memory`, `submit-timeout`,
//!   `submit-tenant`, `submit-go`;
//! - nodes: `node-table`, `node-row` (`data-node`), `node-link`; a node's
//!   page: `node-name`, `node-slots`, `node-jobs-run`, `node-credit`,
//!   `node-trust`, `node-drain`, `node-revoke`, charts `chart-slots`,
//!   `chart-memory`, `chart-node-fuel`;
//! - overview: `stat-running`, `stat-queued`, `stat-nodes`, charts
//!   `chart-jobs`, `chart-queue`, `chart-fuel`; tenants: `tenant-row`.

use crate::guests::{self, guest};
use grid_tests::GridSandbox;
use grid_tests::browser::Browser;

/// Prints `first`, sleeps eight seconds, prints `second`: long enough that
/// the test sees it running with half its output.
const SLOW: &str = "(call $print (i32.const 200) (i32.const 6))
    (call $sleep (i64.const 8000000000))
    (call $print (i32.const 220) (i32.const 7))";

/// A page script: the `data-state` of job `id`'s row, or null.
fn row_state(id: &str) -> String {
    format!("const r = document.querySelector('[data-test=job-row][data-job=\"{id}\"]'); return r && r.dataset.state;")
}

/// A page script: whether job `id`'s row shows `state`.
fn row_is(id: &str, state: &str) -> String {
    format!(
        "const r = document.querySelector('[data-test=job-row][data-job=\"{id}\"]'); return r && r.dataset.state === '{state}';"
    )
}

/// Writes `text` (WAT) as a binary module in the sandbox dir, for a file
/// input to upload.
fn wasm(grid: &GridSandbox, name: &str, text: &str) -> String {
    let path = grid.dir().join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(text).expect("valid WAT")).expect("write module");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_submits_a_job_in_the_page_and_watches_it_run_live() {
    let grid = GridSandbox::builder(1).node_args(&["--slots", "1"]).master_args(&["--http", "127.0.0.1:0"]).start();
    let url = grid.http_url();
    let slow = wasm(&grid, "slow", &guest(SLOW));
    // A job that holds the node's one slot, so that the page's job waits.
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let blocker = grid.submit(&[sleeper.to_str().unwrap()]);
    grid.wait_until("the blocker runs", |g| (g.status(&blocker)["state"] == "running").then_some(()));

    let b = Browser::start().await;
    // The login link logs in, then leaves the URL.
    b.goto(&format!("{url}/#token={}", grid.admin_token())).await;
    b.wait_for(
        "the admin's overview",
        "return document.querySelector('[data-test=whoami]').textContent === 'admin' && location.hash === '#/'",
    )
    .await;
    let href = b.eval("return location.href").await;
    assert!(!href.as_str().unwrap().contains(grid.admin_token()), "the token stayed in the URL: {href}");

    // Submit through the page.
    b.click("#nav a[href='#/submit']").await;
    b.type_into("[data-test=submit-file]", &slow).await;
    b.type_into("[data-test=submit-args]", "one\ntwo words").await;
    b.screenshot("submit").await;
    b.click("[data-test=submit-go]").await;
    let id = b
        .wait_for("the new job's page", "const m = location.hash.match(/^#\\/jobs\\/(.+)$/); return m && document.querySelector('[data-test=job-id]') ? m[1] : null")
        .await;
    let id = id.as_str().unwrap().to_owned();
    b.wait_for("the waiting reason", "return document.querySelector('[data-test=job-waiting]')").await;
    let page = b.eval("return document.body.textContent").await;
    assert!(page.as_str().unwrap().contains("one two words"), "the job page shows its arguments");

    // Its row, queued, then running once the blocker is gone, then done.
    b.click("#nav a[href='#/jobs']").await;
    assert_eq!(b.wait_for("the queued row", &row_state(&id)).await, "queued");
    b.screenshot("jobs").await;
    grid.run(&["cancel", &blocker]).assert_clean_success();
    b.wait_for("the running row", &row_is(&id, "running")).await;

    // The job page shows the output as it comes: the first line while it runs.
    b.click(&format!("[data-test=job-row][data-job='{id}'] [data-test=job-link]")).await;
    b.wait_for(
        "the first line while it runs",
        "const o = document.querySelector('[data-test=job-output]'); const s = document.querySelector('[data-test=job-state]');
         return o && s && s.textContent.includes('running') && o.textContent.includes('first') && !o.textContent.includes('second')",
    )
    .await;
    b.screenshot("job-running").await;
    b.wait_for(
        "the whole output once it succeeded",
        "const o = document.querySelector('[data-test=job-output]'); const s = document.querySelector('[data-test=job-state]');
         return o && s && s.textContent.includes('succeeded') && o.textContent === 'first\\nsecond\\n'",
    )
    .await;
    let outcome = b
        .wait_for(
            "the result",
            "const o = document.querySelector('[data-test=job-outcome]'); return o && o.textContent",
        )
        .await;
    assert_eq!(outcome, "exited");
    b.screenshot("job").await;

    // The jobs page agrees, without a reload.
    b.click("#nav a[href='#/jobs']").await;
    assert_eq!(b.wait_for("the finished row", &row_state(&id)).await, "succeeded");
    assert_eq!(b.wait_for("the blocker's row", &row_state(&blocker)).await, "cancelled");

    // The node that ran it.
    b.click(&format!("[data-test=job-row][data-job='{id}'] [data-test=job-link]")).await;
    b.click("[data-test=job-node] a").await;
    let name = b
        .wait_for(
            "the node page",
            "const n = document.querySelector('[data-test=node-name]'); return n && n.firstChild.textContent",
        )
        .await;
    assert_eq!(name, "node-0");
    b.wait_for("its jobs", &row_is(&id, "succeeded")).await;
    b.screenshot("node").await;
    // The admin drains it from its page, and undrains it.
    b.click("[data-test=node-drain]").await;
    b.wait_for(
        "the draining node",
        "return document.querySelector('[data-test=node-state]')?.textContent === 'draining'",
    )
    .await;
    b.click("[data-test=node-undrain]").await;
    b.wait_for("the ready node", "return document.querySelector('[data-test=node-state]')?.textContent === 'ready'")
        .await;

    // The overview and the tenants.
    b.click("#nav a[href='#/']").await;
    b.wait_for(
        "the overview",
        "return document.querySelector('[data-test=stat-nodes]')?.textContent.includes('1 / 1')",
    )
    .await;
    b.screenshot("overview").await;
    b.click("#nav a[href='#/tenants']").await;
    b.wait_for("the tenants", "return document.querySelector('[data-test=tenant-table], .empty')").await;
    b.screenshot("tenants").await;

    // The volunteer's page, with the node's own credential typed in.
    b.click("[data-test=logout]").await;
    let token = std::fs::read_to_string(grid.dir().join("node-0/node.token")).expect("the node's credential");
    b.type_into("[data-test=login-token]", token.trim()).await;
    b.click("[data-test=login-submit]").await;
    b.wait_for(
        "the volunteer page",
        "return location.hash === '#/me' && document.querySelector('[data-test=node-name]')",
    )
    .await;
    assert_eq!(b.wait_for("the job it ran", &row_state(&id)).await, "succeeded");
    let page = b.eval("return document.body.textContent").await;
    assert!(!page.as_str().unwrap().contains("two words"), "a volunteer saw a job's arguments");
    b.screenshot("volunteer").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_never_sees_another_tenants_jobs() {
    let grid = GridSandbox::builder(1).master_args(&["--http", "127.0.0.1:0"]).start();
    let url = grid.http_url();
    let alice = grid.tenant("alice", &[]);
    let bob = grid.tenant("bob", &[]);
    let hello = grid.wat("hello", &guests::hello());
    let submit = |token: &str| {
        let run = grid.run_as(token, &["submit", hello.to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        run.stdout.trim().to_owned()
    };
    let bobs = submit(&bob);
    let alices = submit(&alice);

    let b = Browser::start().await;
    b.goto(&format!("{url}/")).await;
    // A wrong token is refused in words.
    b.type_into("[data-test=login-token]", "not-a-token").await;
    b.click("[data-test=login-submit]").await;
    b.wait_for(
        "the refusal",
        "const e = document.querySelector('[data-test=login-error]'); return e && !e.hidden && e.textContent",
    )
    .await;
    b.clear("[data-test=login-token]").await;
    b.type_into("[data-test=login-token]", &alice).await;
    b.click("[data-test=login-submit]").await;
    b.wait_for("alice's jobs", "return document.querySelector('[data-test=whoami]').textContent === 'tenant alice' && location.hash === '#/jobs'").await;
    b.wait_for("alice's job", &row_state(&alices)).await;
    // The page follows the event stream (the login cookie opens it).
    b.wait_for("the live stream", "return document.querySelector('[data-test=live]').dataset.mode === 'on'").await;
    let page = || async { b.eval("return document.body.textContent").await.as_str().unwrap().to_owned() };
    assert!(!page().await.contains(&bobs), "alice sees bob's job");

    // Jobs that come later arrive live, and only hers.
    let bobs_later = submit(&bob);
    let alices_later = submit(&alice);
    b.wait_for("alice's later job", &row_state(&alices_later)).await;
    grid.wait_finished(&bobs_later);
    b.wait_for("alice's later job finished", &row_is(&alices_later, "succeeded")).await;
    let shown = page().await;
    assert!(!shown.contains(&bobs) && !shown.contains(&bobs_later), "alice sees bob's jobs");

    // Searching for bob's job finds nothing; its page is refused.
    b.type_into("[data-test=job-search]", &bobs).await;
    b.wait_for("an empty search", "return document.querySelector('[data-test=jobs-empty]')").await;
    b.goto(&format!("{url}/#/jobs/{bobs}")).await;
    b.wait_for("the refusal", "return document.querySelector('[data-test=page-error]')").await;
    assert!(!page().await.contains("hello"), "alice sees bob's module or output");
    b.close().await;
}
