//! Identities through the services: what each tenant sees of jobs, and a
//! node's enrolment and revocation against a master serving on a port.

use super::*;
use crate::rpc::MasterService;
use crate::state::LiveState;
use crate::{Master, MasterConfig, ceilings::SubmitCeilings, modules::ModuleStore};
use grid_core::{JobSpec, Limits, ModuleHash, Submission, TenantQuota};
use grid_proto as pb;
use grid_proto::master_server::Master as _;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Request};

fn as_caller<T>(caller: &Caller, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.extensions_mut().insert(caller.clone());
    req
}

/// A service whose store holds one module; returns the module's hash.
fn service(dir: &std::path::Path) -> (MasterService, ModuleHash) {
    let live = Arc::new(LiveState::default());
    let store = Arc::new(ModuleStore::open(&dir.join("modules"), 1 << 20).unwrap());
    let wasm: Vec<u8> = grid_core::wasm::MAGIC.iter().copied().chain([1, 0, 0, 0]).collect();
    let module = ModuleHash::of(&wasm);
    let mut upload = store.begin(module.clone(), wasm.len() as u64).unwrap();
    upload.write(&wasm).unwrap();
    upload.finish().unwrap();
    let tokens = Arc::new(Tokens::open(dir).unwrap());
    let svc =
        MasterService::new(live, store, Duration::from_secs(1), SubmitCeilings::default(), Duration::from_secs(30))
            .with_tokens(tokens);
    (svc, module)
}

/// A master in this process serving plaintext on a loopback port, with
/// its data in a temp dir: `tweak` sets its config.
fn master(tweak: impl FnOnce(&mut MasterConfig)) -> (Master, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MasterConfig::new(dir.path());
    config.tls = crate::TlsSetup::Off;
    config.fsync = false;
    tweak(&mut config);
    (Master::open(config).unwrap(), dir)
}

/// `master` serving until the sender is dropped or sent to; a channel to it.
async fn serving(
    master: Master,
) -> (tonic::transport::Channel, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(master.serve(listener, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    (channel, stop, server)
}

/// Reads a node session's orders until the master ends it; how it ended.
async fn session_end(orders: &mut tonic::Streaming<pb::MasterMessage>) -> tonic::Status {
    loop {
        match orders.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended without a reason"),
            Err(status) => return status,
        }
    }
}

fn capacity() -> pb::NodeCapacity {
    let big = 1 << 40;
    let capacity = grid_core::Capacity {
        slots: 1,
        memory: 1 << 30,
        disk: 1 << 30,
        fuel_quota: grid_core::FuelQuota { rate_per_hour: big, burst: big },
        per_job: grid_core::Ceilings { fuel: big, memory: 1 << 30, timeout: Duration::from_secs(3600), disk: 1 << 30 },
    };
    grid_core::wire::capacity_to_pb(&capacity, big)
}

fn request(module: &ModuleHash, arg: &str, key: Option<&str>, tenant: &str) -> pb::SubmitJobRequest {
    let spec = JobSpec {
        deterministic: false,
        replicas: 0,
        module: module.clone(),
        args: vec!["app".into(), arg.into()],
        env: vec![],
        stdin: vec![],
        dirs: vec![],
        limits: Limits::default(),
    };
    let submission = Submission { key: key.map(Into::into), tenant: tenant.into(), priority: 0 };
    grid_core::wire::submit_request(spec, submission)
}

#[tokio::test]
async fn a_tenant_sees_and_manages_only_its_own_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, module) = service(dir.path());
    let (a, b) = (Caller::Tenant("a".into()), Caller::Tenant("b".into()));
    let submit =
        async |caller: &Caller, req| svc.submit_job(as_caller(caller, req)).await.map(|r| r.into_inner().job_id);
    let job_a = submit(&a, request(&module, "x", None, "")).await.unwrap();
    let job_default = submit(&Caller::Admin, request(&module, "x", None, "")).await.unwrap();

    // Another tenant's job is answered as one that does not exist.
    let missing = "01NOSUCHJOB".to_owned();
    for (id, caller) in [(&job_a, &b), (&missing, &a)] {
        let get = svc.get_job(as_caller(caller, pb::GetJobRequest { job_id: id.clone() })).await.unwrap_err();
        let cancel = svc.cancel_job(as_caller(caller, pb::CancelJobRequest { job_id: id.clone() })).await.unwrap_err();
        let watch = pb::WatchJobRequest { job_id: id.clone(), snapshot: true };
        let watch = svc.watch_job(as_caller(caller, watch)).await.err().unwrap();
        for err in [get, cancel, watch] {
            assert_eq!((err.code(), err.message()), (Code::NotFound, format!("no job `{id}`").as_str()));
        }
    }
    assert_eq!(
        svc.get_job(as_caller(&a, pb::GetJobRequest { job_id: job_a.clone() })).await.unwrap().get_ref().tenant,
        "a"
    );
    let info = svc.get_job(as_caller(&Caller::Admin, pb::GetJobRequest { job_id: job_default.clone() })).await;
    assert_eq!(info.unwrap().get_ref().tenant, "default", "the admin submits as `default` when it names none");

    // Listings: a tenant's own jobs whatever it asks; the admin's as asked.
    let list = async |caller: &Caller, tenant: &str| {
        let req = pb::ListJobsRequest { tenant: tenant.into(), ..Default::default() };
        let jobs = svc.list_jobs(as_caller(caller, req)).await.unwrap().into_inner().jobs;
        jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(list(&a, "").await, vec![job_a.clone()]);
    assert_eq!(list(&b, "").await, Vec::<String>::new());
    assert_eq!(list(&b, "a").await, Vec::<String>::new());
    assert_eq!(list(&Caller::Admin, "a").await, vec![job_a.clone()]);
    assert_eq!(list(&Caller::Admin, "").await.len(), 2);

    // A tenant submits as itself only; the admin as anyone.
    let err = submit(&b, request(&module, "x", None, "a")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    submit(&b, request(&module, "x", None, "b")).await.unwrap();
    let as_a = submit(&Caller::Admin, request(&module, "y", None, "a")).await.unwrap();
    assert!(list(&a, "").await.contains(&as_a));
    let bad = submit(&Caller::Admin, request(&module, "y", None, "no good")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // B cancels nothing of A's; A cancels its own.
    let cancel = svc.cancel_job(as_caller(&a, pb::CancelJobRequest { job_id: job_a.clone() })).await.unwrap();
    assert!(cancel.into_inner().cancelled);
}

#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, module) = service(dir.path());
    let (a, b) = (Caller::Tenant("a".into()), Caller::Tenant("b".into()));
    let submit =
        async |caller: &Caller, req| svc.submit_job(as_caller(caller, req)).await.map(|r| r.into_inner().job_id);
    let job_a = submit(&a, request(&module, "x", Some("k"), "")).await.unwrap();
    assert_eq!(submit(&a, request(&module, "x", Some("k"), "")).await.unwrap(), job_a);
    let job_b = submit(&b, request(&module, "x", Some("k"), "")).await.unwrap();
    assert_ne!(job_b, job_a, "tenant b's key names a job of its own");
    assert_eq!(submit(&b, request(&module, "x", Some("k"), "")).await.unwrap(), job_b);
    let conflict = submit(&b, request(&module, "other", Some("k"), "")).await.unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert!(conflict.message().starts_with("idempotency key `k` was used for job "), "{}", conflict.message());
    assert!(conflict.message().contains(&job_b) && !conflict.message().contains(&job_a));
}

#[tokio::test]
async fn a_node_joins_with_a_join_token_and_a_revoked_node_s_session_ends_at_once() {
    let (master, _dir) = master(|_| {});
    let admin_token = master.admin_token();
    let (channel, stop, server) = serving(master).await;
    let master_as = |token: &str| grid_core::connect::master(channel.clone(), Some(token)).unwrap();
    let mut admin = grid_core::connect::admin(channel.clone(), Some(&admin_token)).unwrap();

    let quota = Some(pb::TenantQuota::from(TenantQuota::default()));
    let alice = admin.create_tenant(pb::CreateTenantRequest { name: "alice".into(), quota }).await.unwrap();
    let alice = alice.into_inner().token;
    let again = admin.create_tenant(pb::CreateTenantRequest { name: "alice".into(), quota }).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let bob = admin.create_tenant(pb::CreateTenantRequest { name: "bob".into(), quota }).await.unwrap();
    let bob = bob.into_inner().token;
    let join = pb::CreateJoinTokenRequest { uses: 1, ttl_ms: 0, owner: "alice".into() };
    let join = admin.create_join_token(join).await.unwrap().into_inner().token;
    assert!(join.starts_with("gridjoin_"), "{join}");

    let ask = pb::JoinGridRequest { name: "n1".into(), identity: "i1".into() };
    let joined = master_as(&join).join_grid(ask.clone()).await.unwrap().into_inner();
    assert_eq!((joined.name.as_str(), joined.owner.as_str()), ("n1", "alice"));
    let twice = master_as(&join).join_grid(ask).await.unwrap_err();
    assert_eq!((twice.code(), twice.message()), (Code::Unauthenticated, "the join token has no uses left"));

    // A tenant token cannot serve; the credential can, under its own name.
    let register = |name: &str| {
        let capacity = capacity();
        let reg = pb::Register {
            name: name.into(),
            capacity: Some(capacity),
            cached_hashes: vec![],
            identity: "i1".into(),
            held: vec![],
            compile_timeout_ms: 0,
        };
        let hello = pb::NodeMessage { msg: Some(pb::node_message::Msg::Register(reg)) };
        let (keep, rx) = tokio::sync::mpsc::channel::<pb::NodeMessage>(1);
        (
            tokio_stream::StreamExt::chain(tokio_stream::once(hello), tokio_stream::wrappers::ReceiverStream::new(rx)),
            keep,
        )
    };
    let (hello, _keep_t) = register("n1");
    let err = master_as(&alice).node_session(hello).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::PermissionDenied, "a tenant token cannot serve as a node"));
    let (hello, _keep) = register("impostor");
    let mut orders = master_as(&joined.node_token).node_session(hello).await.unwrap().into_inner();
    let first = orders.message().await.unwrap().unwrap();
    assert!(matches!(first.msg, Some(pb::master_message::Msg::Registered(_))), "{first:?}");

    let nodes = async |token: &str| {
        let req = pb::ListNodesRequest::default();
        let nodes = master_as(token).list_nodes(req).await.unwrap().into_inner().nodes;
        nodes.into_iter().map(|n| (n.name, n.owner)).collect::<Vec<_>>()
    };
    let n1 = vec![("n1".to_owned(), "alice".to_owned())];
    assert_eq!(nodes(&admin_token).await, n1);
    assert_eq!(nodes(&alice).await, n1);
    assert_eq!(nodes(&bob).await, vec![], "bob does not see alice's private node");

    // Revoked: the session ends at once, and the credential is refused.
    let revoked = admin.revoke_node(pb::RevokeNodeRequest { name: "n1".into() }).await.unwrap().into_inner();
    assert!(revoked.revoked);
    let ended = session_end(&mut orders).await;
    assert_eq!((ended.code(), ended.message()), (Code::PermissionDenied, "this node's credential was revoked"));
    assert_eq!(nodes(&admin_token).await, vec![]);
    let (hello, _keep2) = register("n1");
    let err = master_as(&joined.node_token).node_session(hello).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unauthenticated, "the token was revoked"));

    let listed = admin.list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
    // Tokens made in the same millisecond (the join token and the node's)
    // are listed in the order of their random ids.
    let mut kinds: Vec<_> = listed.iter().map(|t| t.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["admin", "join", "node", "tenant", "tenant"]);
    let node = listed.iter().find(|t| t.kind == "node").unwrap();
    assert!(node.revoked && node.subject == "n1", "{node:?}");
    let secret = grid_core::token::Token::parse(&alice).unwrap().secret;
    assert!(!format!("{listed:?}").contains(&secret), "tokens are listed without secrets");
    let _ = stop.send(());
    drop(orders);
    let _ = server.await;
}

#[tokio::test]
async fn a_credential_revoked_before_its_node_registers_serves_nothing() {
    let (master, _dir) = master(|_| {});
    let (admin_token, node) = (master.admin_token(), master.node_credential("slow").unwrap());
    let (channel, stop, server) = serving(master).await;
    let mut as_node = grid_core::connect::master(channel.clone(), Some(&node)).unwrap();
    let mut admin = grid_core::connect::admin(channel, Some(&admin_token)).unwrap();

    // The session is open, but the node has not registered yet.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::NodeMessage>(1);
    let session =
        tokio::spawn(async move { as_node.node_session(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    // Its call has passed the auth layer once the token shows a use.
    let mut waited = 0;
    loop {
        let tokens = admin.list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
        if tokens.iter().any(|t| t.kind == "node" && t.last_used_ms > 0) {
            break;
        }
        waited += 1;
        assert!(waited < 1000, "the node's call never reached the master");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let revoked = admin.revoke_node(pb::RevokeNodeRequest { name: "slow".into() }).await.unwrap();
    assert!(revoked.into_inner().revoked);
    let reg = pb::Register {
        name: "slow".into(),
        capacity: Some(capacity()),
        cached_hashes: vec![],
        identity: "s".into(),
        held: vec![],
        compile_timeout_ms: 0,
    };
    tx.send(pb::NodeMessage { msg: Some(pb::node_message::Msg::Register(reg)) }).await.unwrap();
    let mut orders = session.await.unwrap().unwrap().into_inner();
    let ended = session_end(&mut orders).await;
    assert_eq!((ended.code(), ended.message()), (Code::PermissionDenied, "this node's credential was revoked"));
    let nodes = admin.list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
    assert!(nodes.iter().any(|t| t.kind == "node" && t.revoked));
    let _ = stop.send(());
    drop((orders, tx));
    let _ = server.await;
}

#[tokio::test]
async fn a_node_session_that_never_registers_ends_with_a_reason() {
    let (master, _dir) = master(|c| c.heartbeat = Duration::from_millis(20));
    let node = master.tokens.issue_node("quiet").unwrap().to_string();
    let (channel, stop, server) = serving(master).await;
    // A stream that sends nothing and stays open.
    let (keep, rx) = tokio::sync::mpsc::channel::<pb::NodeMessage>(1);
    let mut as_node = grid_core::connect::master(channel, Some(&node)).unwrap();
    let session = as_node.node_session(tokio_stream::wrappers::ReceiverStream::new(rx));
    // A bound only so that a broken build fails instead of hanging.
    let err =
        tokio::time::timeout(Duration::from_secs(30), session).await.expect("the session waits still").unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::DeadlineExceeded, "no `register` within 60ms of opening the session")
    );
    drop(keep);
    let _ = stop.send(());
    let _ = server.await;
}
