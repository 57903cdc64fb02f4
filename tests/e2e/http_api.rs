//! The HTTP API (`grid-master --http`), over real HTTPS with the master's
//! own CA, against a real master and real nodes: every route, the same
//! isolation as gRPC, a node credential's volunteer view, bad input, and a
//! log stream that resumes where it broke off.

use crate::guests::{self, guest};
use futures::StreamExt;
use grid_tests::GridSandbox;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Prints `first`, sleeps 300ms, prints `second` to stderr and `first` again.
const CHATTY: &str = "(call $print (i32.const 200) (i32.const 6)) (call $sleep (i64.const 300000000)) \
     (call $eprint (i32.const 220) (i32.const 7)) (call $print (i32.const 200) (i32.const 6))";

/// An HTTPS client trusting the sandbox master's CA, calling as `token`.
struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(grid: &GridSandbox, token: Option<&str>) -> Self {
        let base = grid.http_url();
        let mut http = reqwest::Client::builder();
        if base.starts_with("https://") {
            let ca = std::fs::read(grid.ca().expect("a TLS master")).expect("read ca.pem");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca.pem"));
        }
        let http = http.build().expect("client");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Self { base, http, token: token.map(str::to_owned), rt }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req`: its status and its body (JSON when it parses, else a string).
    fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.rt.block_on(async {
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let text = resp.text().await.expect("body");
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(Method::GET, path))
    }

    fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(Method::POST, path).json(&body))
    }

    /// Uploads `wat` (compiled) and returns its hash.
    fn upload(&self, wat: &str) -> String {
        let bytes = wat::parse_str(wat).expect("valid wat");
        let (status, body) = self.send(self.req(Method::PUT, "/api/v1/modules").body(bytes));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["hash"].as_str().unwrap().to_owned()
    }

    /// Submits `body` and returns the job's id.
    fn submit(&self, body: Value) -> String {
        let (status, answer) = self.post("/api/v1/jobs", body);
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Long-polls job `id` until it finishes.
    fn wait(&self, id: &str) -> Value {
        for _ in 0..20 {
            let (status, job) = self.get(&format!("/api/v1/jobs/{id}/wait?timeout=10s"));
            assert_eq!(status, StatusCode::OK, "{job}");
            if !matches!(job["state"].as_str(), Some("queued" | "running")) {
                return job;
            }
        }
        panic!("job {id} did not finish");
    }

    /// The SSE events of job `id`'s log from `last_id` on: (event, id, data),
    /// the first `n` of them.
    fn log_events(&self, id: &str, last_id: Option<&str>, n: usize) -> Vec<(String, String, String)> {
        let mut req = self.req(Method::GET, &format!("/api/v1/jobs/{id}/logs")).header("accept", "text/event-stream");
        if let Some(last) = last_id {
            req = req.header("last-event-id", last);
        }
        self.rt.block_on(async {
            let resp = req.send().await.expect("request");
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
            let mut body = resp.bytes_stream();
            let (mut text, mut events) = (String::new(), Vec::new());
            while events.len() < n {
                let Some(chunk) = body.next().await else { break };
                text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    let (mut event, mut eid, mut data) = (String::new(), String::new(), Vec::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            eid = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                        }
                    }
                    if !event.is_empty() {
                        events.push((event, eid, data.join("\n")));
                    }
                }
            }
            events.truncate(n);
            events
        })
    }
}

/// The grid the tests share the shape of: one node, HTTP on a free port.
fn grid() -> GridSandbox {
    GridSandbox::builder(1).master_args(&["--http", "127.0.0.1:0", "--max-module-size", "1MiB"]).start()
}

#[test]
fn the_api_runs_a_job_from_upload_to_logs_and_keeps_tenants_apart() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let alice = Api::new(&grid, Some(&grid.tenant("alice", &[])));
    let bob = Api::new(&grid, Some(&grid.tenant("bob", &[])));
    let nobody = Api::new(&grid, None);

    // Health and identity.
    assert_eq!(nobody.get("/healthz").0, StatusCode::OK);
    assert_eq!(nobody.get("/readyz").0, StatusCode::OK);
    assert_eq!(nobody.get("/version").1["name"], "grid-master");
    assert_eq!(admin.get("/api/v1/whoami").1, json!({"kind": "admin", "tenant": null, "node": null}));
    assert_eq!(alice.get("/api/v1/whoami").1, json!({"kind": "tenant", "tenant": "alice", "node": null}));
    let (status, body) = nobody.get("/api/v1/whoami");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().starts_with("no token"), "{body}");
    let forged = Api::new(&grid, Some("grid_nope"));
    assert_eq!(forged.get("/api/v1/jobs").0, StatusCode::UNAUTHORIZED);

    // Upload, submit (twice with one key: one job), wait, read the log.
    let hash = alice.upload(&guest(CHATTY));
    let spec = json!({"module": hash, "args": ["a b"], "env": {"K": "V"}, "fuel": "1G", "timeout": "30s"});
    let keyed = |api: &Api| api.req(Method::POST, "/api/v1/jobs").header("idempotency-key", "k1").json(&spec);
    let (status, first) = alice.send(keyed(&alice));
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(alice.send(keyed(&alice)).1["id"], id.as_str(), "the same key yields the same job");
    let job = alice.wait(&id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["outcome"], "exited");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["reason"], Value::Null);
    assert_eq!(job["tenant"], "alice");
    assert_eq!(job["module"], hash.as_str());
    assert_eq!(job["args"][1], "a b");
    assert_eq!(job["node"], "node-0");
    assert_eq!(job["limits"]["fuel"], 1_000_000_000u64);
    assert_eq!(job["limits"]["timeout_ms"], 30_000);
    assert!(job["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(job["history"][0]["node"], "node-0");
    assert_eq!(job["history"][0]["end"], "finished");
    let logs = |api: &Api, q: &str| api.send(api.req(Method::GET, &format!("/api/v1/jobs/{id}/logs{q}")));
    assert_eq!(logs(&alice, "").1, "first\nsecond\nfirst\n");
    assert_eq!(logs(&alice, "?stream=stdout").1, "first\nfirst\n");
    assert_eq!(logs(&alice, "?stream=stderr").1, "second\n");
    assert_eq!(logs(&alice, "?offset=6").1, "second\nfirst\n");
    assert_eq!(logs(&alice, "?stream=nope").0, StatusCode::BAD_REQUEST);

    // Listings: a tenant's own jobs only, whatever it asks for.
    let (_, page) = alice.get("/api/v1/jobs");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(alice.get("/api/v1/jobs?state=succeeded").1["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(alice.get("/api/v1/jobs?state=running").1["jobs"].as_array().unwrap().len(), 0);
    for q in ["", "?tenant=alice"] {
        let (status, page) = bob.get(&format!("/api/v1/jobs{q}"));
        assert_eq!(status, StatusCode::OK);
        assert!(page["jobs"].as_array().unwrap().is_empty(), "{page}");
    }
    assert_eq!(admin.get("/api/v1/jobs?tenant=alice").1["jobs"][0]["id"], id.as_str());
    // To bob, alice's job is one that does not exist.
    let missing = "01JAAAAAAAAAAAAAAAAAAAAAAA";
    for (method, path) in [
        (Method::GET, "/api/v1/jobs/ID"),
        (Method::GET, "/api/v1/jobs/ID/logs"),
        (Method::GET, "/api/v1/jobs/ID/wait?timeout=1s"),
        (Method::POST, "/api/v1/jobs/ID/cancel"),
    ] {
        let (mine, theirs) = (path.replace("ID", &id), path.replace("ID", missing));
        let (status, body) = bob.send(bob.req(method.clone(), &mine));
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let (_, none) = bob.send(bob.req(method, &theirs));
        assert_eq!(
            body["error"].as_str().unwrap().replace(&id, "ID"),
            none["error"].as_str().unwrap().replace(missing, "ID")
        );
    }
    // Bob may not submit as alice, nor reach the admin's routes.
    let (status, body) = bob.post("/api/v1/jobs", json!({"module": hash, "tenant": "alice"}));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(bob.get("/api/v1/tenants").0, StatusCode::FORBIDDEN);
    assert_eq!(bob.post("/api/v1/nodes/node-0/drain", json!({})).0, StatusCode::FORBIDDEN);

    // Nodes: a tenant sees no address; the admin does.
    let (_, nodes) = alice.get("/api/v1/nodes");
    assert_eq!(nodes["nodes"][0]["name"], "node-0");
    assert_eq!(nodes["nodes"][0]["state"], "ready");
    assert_eq!(nodes["nodes"][0]["address"], Value::Null);
    assert!(nodes["trust_after"].is_u64());
    assert!(admin.get("/api/v1/nodes").1["nodes"][0]["address"].is_string());
    let (_, page) = admin.get("/api/v1/nodes/node-0");
    assert_eq!(page["node"]["jobs_run"], 1, "{page}");
    assert!(page["series"].is_array());
    assert_eq!(admin.get("/api/v1/nodes/nope").0, StatusCode::NOT_FOUND);
    assert_eq!(admin.get("/api/v1/nodes/self").0, StatusCode::FORBIDDEN);

    // The grid: stats, tenants.
    let (_, stats) = admin.get("/api/v1/stats");
    assert!(stats["series"].is_array());
    assert_eq!(alice.get("/api/v1/stats").0, StatusCode::FORBIDDEN, "the grid's sums are the admin's");
    assert_eq!(stats["fuel_by_node"][0]["node"], "node-0");
    let (_, tenants) = admin.get("/api/v1/tenants");
    let names: Vec<&str> = tenants["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"alice") && names.contains(&"bob"), "{tenants}");
    let (status, _) = nobody.get("/metrics");
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_node_credential_sees_its_own_node_and_a_volunteer_s_cut_of_its_jobs() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let hash = admin.upload(&guests::hello());
    let id = admin.submit(json!({"module": hash, "args": ["secret-arg"], "stdin": "secret-in"}));
    assert_eq!(admin.wait(&id)["state"], "succeeded");
    let credential = std::fs::read_to_string(grid.dir().join("node-0/node.token")).expect("node-0's credential");
    let node = Api::new(&grid, Some(credential.trim()));
    assert_eq!(node.get("/api/v1/whoami").1, json!({"kind": "node", "tenant": null, "node": "node-0"}));
    let (status, me) = node.get("/api/v1/nodes/self");
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["node"]["name"], "node-0");
    assert_eq!(me["node"]["address"], Value::Null);
    let (_, nodes) = node.get("/api/v1/nodes");
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    // Its jobs: id, state, outcome, fuel, times; never args, stdin or output.
    let (_, page) = node.get("/api/v1/jobs");
    assert_eq!(page["jobs"][0]["id"], id.as_str(), "{page}");
    let (status, job) = node.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["state"], "succeeded");
    assert!(job["fuel_used"].as_u64().unwrap() > 0);
    for hidden in ["args", "env", "stdin", "module", "tenant", "limits"] {
        assert!(job.get(hidden).is_none(), "{hidden} shown to a node: {job}");
    }
    assert!(!page.to_string().contains("secret"), "{page}");
    assert_eq!(node.get(&format!("/api/v1/jobs/{id}/logs")).0, StatusCode::FORBIDDEN);
    assert_eq!(node.post("/api/v1/jobs", json!({"module": hash})).0, StatusCode::FORBIDDEN);
    assert_eq!(node.get("/api/v1/tenants").0, StatusCode::FORBIDDEN);
    // Another node's job is none of its business.
    assert_eq!(node.get("/api/v1/jobs/01JAAAAAAAAAAAAAAAAAAAAAAA").0, StatusCode::NOT_FOUND);
}

#[test]
fn bad_input_is_refused_with_one_line() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let one_line = |(status, body): (StatusCode, Value), want: StatusCode| {
        assert_eq!(status, want, "{body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("no error field: {body}"));
        assert!(!error.is_empty() && !error.contains('\n'), "{error:?}");
        error.to_owned()
    };
    let raw = |body: &'static str| {
        admin.req(Method::POST, "/api/v1/jobs").header("content-type", "application/json").body(body)
    };
    let error = one_line(admin.send(raw("{not json")), StatusCode::BAD_REQUEST);
    assert!(error.starts_with("invalid JSON body"), "{error}");
    one_line(admin.send(raw(r#"{"module": "x", "bogus": 1}"#)), StatusCode::BAD_REQUEST);
    one_line(admin.post("/api/v1/jobs", json!({"module": "not-a-hash"})), StatusCode::BAD_REQUEST);
    let absent = "0".repeat(64);
    let error = one_line(admin.post("/api/v1/jobs", json!({"module": absent})), StatusCode::BAD_REQUEST);
    assert!(error.contains("upload it first"), "{error}");
    one_line(admin.post("/api/v1/jobs", json!({"module": absent, "fuel": "lots"})), StatusCode::BAD_REQUEST);
    // Bodies past their bound.
    let huge = vec![b' '; 9 << 20];
    one_line(admin.send(admin.req(Method::POST, "/api/v1/jobs").body(huge)), StatusCode::PAYLOAD_TOO_LARGE);
    let big_module = [&b"\0asm\x01\0\0\0"[..], &vec![0u8; 2 << 20]].concat();
    let error =
        one_line(admin.send(admin.req(Method::PUT, "/api/v1/modules").body(big_module)), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error.contains("over the master's limit"), "{error}");
    one_line(admin.send(admin.req(Method::PUT, "/api/v1/modules").body("not wasm")), StatusCode::BAD_REQUEST);
    one_line(
        admin.send(admin.req(Method::POST, "/api/v1/login").json(&json!({"token": "grid_nope"}))),
        StatusCode::UNAUTHORIZED,
    );
    // Unknown things.
    one_line(admin.get("/api/v1/jobs/01JAAAAAAAAAAAAAAAAAAAAAAA"), StatusCode::NOT_FOUND);
    one_line(admin.get("/api/v1/nope"), StatusCode::NOT_FOUND);
    one_line(admin.send(admin.req(Method::DELETE, "/api/v1/jobs")), StatusCode::METHOD_NOT_ALLOWED);
    one_line(admin.get(&format!("/api/v1/jobs?q={}", "a".repeat(1000))), StatusCode::BAD_REQUEST);
    one_line(admin.get("/api/v1/jobs?cursor=zzz"), StatusCode::BAD_REQUEST);
    one_line(admin.get("/api/v1/jobs?limit=-1"), StatusCode::BAD_REQUEST);
}

#[test]
fn the_login_cookie_signs_in_and_changes_need_the_csrf_header() {
    let grid = grid();
    let alice = grid.tenant("alice", &[]);
    let api = Api::new(&grid, None);
    let login = api.rt.block_on(api.req(Method::POST, "/api/v1/login").json(&json!({"token": alice})).send()).unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["grid_token=", "HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |method: Method, path: &str| api.req(method, path).header("cookie", pair.as_str());
    let (status, me) = api.send(with_cookie(Method::GET, "/api/v1/whoami"));
    assert_eq!((status, me["tenant"].as_str()), (StatusCode::OK, Some("alice")));
    // A change signed in by the cookie alone is refused; with the header it goes.
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let hash = admin.upload(&guest(guests::SLEEP_MINUTE));
    let body = json!({"module": hash});
    let (status, refused) = api.send(with_cookie(Method::POST, "/api/v1/jobs").json(&body));
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("X-Grid-Csrf"));
    let (status, made) = api.send(with_cookie(Method::POST, "/api/v1/jobs").header("x-grid-csrf", "1").json(&body));
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap();
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    assert_eq!(api.send(with_cookie(Method::POST, &cancel)).0, StatusCode::FORBIDDEN);
    let (status, done) = api.send(with_cookie(Method::POST, &cancel).header("x-grid-csrf", "1"));
    assert_eq!((status, &done["cancelled"]), (StatusCode::OK, &json!(true)));
    assert_eq!(admin.wait(id)["state"], "cancelled");
    // A login must be JSON: a cross-site form cannot send it.
    let form = api
        .req(Method::POST, "/api/v1/login")
        .header("content-type", "text/plain")
        .body(format!(r#"{{"token":"{alice}"}}"#));
    assert_eq!(api.send(form).0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let out = api.rt.block_on(api.req(Method::POST, "/api/v1/logout").send()).unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[test]
fn a_log_stream_resumes_from_its_last_event_id() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let hash = admin.upload(&guest(CHATTY));
    let id = admin.submit(json!({"module": hash}));
    // While it runs: the first piece, then the stream breaks off.
    let first = admin.log_events(&id, None, 1);
    assert_eq!(first, vec![("stdout".to_owned(), "6".to_owned(), "first\n".to_owned())]);
    // Resumed after it: the rest, then the end with the job.
    let rest = admin.log_events(&id, Some("6"), 3);
    assert_eq!(rest[0], ("stderr".to_owned(), "13".to_owned(), "second\n".to_owned()), "{rest:?}");
    assert_eq!(rest[1], ("stdout".to_owned(), "19".to_owned(), "first\n".to_owned()), "{rest:?}");
    assert_eq!(rest[2].0, "end");
    let job: Value = serde_json::from_str(&rest[2].2).unwrap();
    assert_eq!(job["state"], "succeeded");
    // A finished job's log resumes from its record in the middle of a piece.
    let tail = admin.log_events(&id, Some("16"), 2);
    assert_eq!(tail[0], ("stdout".to_owned(), "19".to_owned(), "st\n".to_owned()), "{tail:?}");
    assert_eq!(tail[1].0, "end");
    let (status, _) =
        admin.send(admin.req(Method::GET, &format!("/api/v1/jobs/{id}/logs")).header("last-event-id", "x"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

impl Api {
    /// The changes of `/api/v1/events` (NDJSON) after `after`, read until
    /// `done` holds for the one just read; all of them.
    fn changes_until(&self, after: u64, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let req =
            self.req(Method::GET, &format!("/api/v1/events?after={after}")).header("accept", "application/x-ndjson");
        self.rt.block_on(async {
            let resp = req.send().await.expect("request");
            assert_eq!(resp.status(), StatusCode::OK);
            let mut body = resp.bytes_stream();
            let (mut text, mut seen) = (String::new(), Vec::new());
            let read = async {
                while let Some(chunk) = body.next().await {
                    text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
                    while let Some(end) = text.find('\n') {
                        let line: String = text.drain(..=end).collect();
                        let change: Value = serde_json::from_str(&line).expect("a JSON line");
                        let stop = done(&change);
                        seen.push(change);
                        if stop {
                            return;
                        }
                    }
                }
            };
            tokio::time::timeout(grid_tests::READY_TIMEOUT, read).await.unwrap_or_else(|_| panic!("{seen:#?}"));
            seen
        })
    }
}

#[test]
fn the_events_feed_shows_each_caller_its_own_changes_and_resumes() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let alice = Api::new(&grid, Some(&grid.tenant("alice", &[])));
    let bob = Api::new(&grid, Some(&grid.tenant("bob", &[])));
    let hash = admin.upload(&guests::hello());
    let mine = alice.submit(json!({"module": hash}));
    assert_eq!(alice.wait(&mine)["state"], "succeeded");
    let theirs = bob.submit(json!({"module": hash}));
    assert_eq!(bob.wait(&theirs)["state"], "succeeded");
    let finished = |id: &str| {
        let id = id.to_owned();
        move |c: &Value| c["kind"] == "job" && c["job"]["id"] == id.as_str() && c["job"]["state"] == "succeeded"
    };
    // Alice reads the feed from its start: her job to its end, never bob's.
    let seen = alice.changes_until(0, finished(&mine));
    assert!(seen.iter().all(|c| c["job"]["id"] != theirs.as_str()), "{seen:#?}");
    assert!(seen.iter().all(|c| c["kind"] == "job" || c["kind"] == "node"), "{seen:#?}");
    let seqs: Vec<u64> = seen.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    // The admin sees both, and the node's changes.
    let seen = admin.changes_until(0, finished(&theirs));
    assert!(seen.iter().any(|c| c["job"]["id"] == mine.as_str()), "{seen:#?}");
    let node_change = |c: &Value| c["kind"] == "node" && c["node"]["name"] == "node-0";
    if !seen.iter().any(node_change) {
        admin.changes_until(0, node_change);
    }
    // Resumed after alice's job ended, bob's end comes, hers does not again.
    let after = seen.iter().find(|c| c["job"]["id"] == mine.as_str()).unwrap()["seq"].as_u64().unwrap();
    let resumed = admin.changes_until(after, finished(&theirs));
    assert!(resumed.iter().all(|c| c["seq"].as_u64().unwrap() > after), "{resumed:#?}");
    assert!(resumed.iter().all(|c| c["job"]["id"] != mine.as_str()), "{resumed:#?}");
    // SSE too, with the sequence number as the event id.
    let (status, _) = admin.send(admin.req(Method::GET, "/api/v1/events").header("last-event-id", "nope"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn the_admin_drains_and_revokes_a_node_and_the_document_lists_the_routes() {
    let grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let hash = admin.upload(&guests::hello());
    let (status, body) = admin.post("/api/v1/nodes/node-0/drain", json!({}));
    assert_eq!((status, &body["draining"]), (StatusCode::OK, &json!(true)), "{body}");
    assert_eq!(admin.get("/api/v1/nodes/node-0").1["node"]["state"], "draining");
    let id = admin.submit(json!({"module": hash}));
    let job = admin.get(&format!("/api/v1/jobs/{id}/wait?timeout=1s")).1;
    assert_eq!(job["state"], "queued", "a drained node takes no job: {job}");
    assert!(job["waiting"].as_str().unwrap().contains("draining"), "{job}");
    assert_eq!(admin.post("/api/v1/nodes/node-0/undrain", json!({})).0, StatusCode::OK);
    assert_eq!(admin.wait(&id)["state"], "succeeded");
    assert_eq!(admin.post("/api/v1/nodes/nope/drain", json!({})).0, StatusCode::NOT_FOUND);
    let (status, body) = admin.post("/api/v1/nodes/node-0/unquarantine", json!({}));
    assert_eq!((status, &body["cleared"]), (StatusCode::OK, &json!(false)), "{body}");
    // Revoked, the node's credential opens nothing.
    let credential = std::fs::read_to_string(grid.dir().join("node-0/node.token")).unwrap();
    let node = Api::new(&grid, Some(credential.trim()));
    assert_eq!(node.get("/api/v1/whoami").0, StatusCode::OK);
    let (status, body) = admin.post("/api/v1/nodes/node-0/revoke", json!({}));
    assert_eq!((status, &body["revoked"]), (StatusCode::OK, &json!(true)), "{body}");
    assert_eq!(node.get("/api/v1/whoami").0, StatusCode::UNAUTHORIZED);
    // The OpenAPI document is served, and names every route.
    let (status, doc) = Api::new(&grid, None).get("/api/v1/openapi.json");
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/jobs", "/api/v1/events", "/api/v1/nodes/{name}/drain", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}

#[test]
fn plain_http_is_served_on_loopback_alone() {
    let grid = GridSandbox::builder(0).master_args(&["--http", "127.0.0.1:0", "--http-plaintext"]).start();
    assert!(grid.http_url().starts_with("http://"));
    let admin = Api::new(&grid, Some(grid.admin_token()));
    assert_eq!(admin.get("/api/v1/whoami").1["kind"], "admin");
    // Logged in over plain HTTP, the cookie is not `Secure` (it could not come back).
    let login =
        admin.rt.block_on(admin.req(Method::POST, "/api/v1/login").json(&json!({"token": grid.admin_token()})).send());
    assert!(!login.unwrap().headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(grid_tests::bin("grid-master"))
        .args(["--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--http-plaintext", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn a_client_that_drips_its_headers_is_cut_off_and_others_are_served_meanwhile() {
    use std::io::{Read, Write};
    let grid = GridSandbox::builder(0).master_args(&["--http", "127.0.0.1:0", "--http-plaintext"]).start();
    let addr = grid.http_url().trim_start_matches("http://").to_owned();
    // Half a request, then nothing more.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: grid\r\nX-Slow: ").unwrap();
    slow.set_read_timeout(Some(grid_tests::READY_TIMEOUT)).unwrap();
    // Meanwhile the server answers everyone else.
    let admin = Api::new(&grid, Some(grid.admin_token()));
    assert_eq!(admin.get("/api/v1/whoami").1["kind"], "admin");
    // The dripping one is closed (with a 408 at most), long before the bound.
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(read.is_ok(), "the connection was held open: {read:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn open_streams_end_when_the_master_shuts_down() {
    let mut grid = grid();
    let admin = Api::new(&grid, Some(grid.admin_token()));
    let hash = admin.upload(&guest(guests::SLEEP_MINUTE));
    let id = admin.submit(json!({"module": hash}));
    let (logs, events) = admin.rt.block_on(async {
        let logs = admin.req(Method::GET, &format!("/api/v1/jobs/{id}/logs")).header("accept", "text/event-stream");
        let events = admin.req(Method::GET, "/api/v1/events").header("accept", "application/x-ndjson");
        (logs.send().await.unwrap(), events.send().await.unwrap())
    });
    assert_eq!((logs.status(), events.status()), (StatusCode::OK, StatusCode::OK));
    grid.signal_master("TERM");
    // Both streams end, and the master exits cleanly.
    admin.rt.block_on(async {
        let drain = |r: reqwest::Response| async move {
            let mut body = r.bytes_stream();
            while let Some(Ok(_)) = body.next().await {}
        };
        tokio::time::timeout(grid_tests::READY_TIMEOUT, async { tokio::join!(drain(logs), drain(events)) })
            .await
            .expect("the streams ended");
    });
    assert_eq!(grid.wait_master_exit(grid_tests::READY_TIMEOUT), Some(0));
}
