//! A node's enrolment against a fake master that speaks the protocol: the
//! join token traded once, the credential saved and used, a refusal
//! ending the node.

use crate::{Node, NodeConfig};
use grid_proto as pb;
use pb::master_server::{Master, MasterServer};
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

type Answer<T> = Result<Response<T>, Status>;
type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

/// A master that grants every join and refuses every session, noting the
/// bearer of each call.
#[derive(Default, Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl Fake {
    fn saw<T>(&self, call: &'static str, req: &Request<T>) {
        let bearer = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        self.calls.lock().unwrap().push((call, bearer));
    }
}

fn no<T>() -> Answer<T> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl Master for Fake {
    type WatchJobStream = Stream<pb::JobEvent>;
    type RunJobStream = Stream<pb::JobEvent>;
    type NodeSessionStream = Stream<pb::MasterMessage>;
    type FetchModuleStream = Stream<pb::ModuleChunk>;

    async fn missing_modules(&self, _: Request<pb::MissingModulesRequest>) -> Answer<pb::MissingModulesResponse> {
        no()
    }
    async fn upload_module(&self, _: Request<tonic::Streaming<pb::UploadChunk>>) -> Answer<pb::UploadModuleResponse> {
        no()
    }
    async fn submit_job(&self, _: Request<pb::SubmitJobRequest>) -> Answer<pb::SubmitJobResponse> {
        no()
    }
    async fn watch_job(&self, _: Request<pb::WatchJobRequest>) -> Answer<Self::WatchJobStream> {
        no()
    }
    async fn run_job(&self, _: Request<pb::SubmitJobRequest>) -> Answer<Self::RunJobStream> {
        no()
    }
    async fn cancel_job(&self, _: Request<pb::CancelJobRequest>) -> Answer<pb::CancelJobResponse> {
        no()
    }
    async fn get_job(&self, _: Request<pb::GetJobRequest>) -> Answer<pb::JobInfo> {
        no()
    }
    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> Answer<pb::ListJobsResponse> {
        no()
    }
    async fn list_nodes(&self, _: Request<pb::ListNodesRequest>) -> Answer<pb::ListNodesResponse> {
        no()
    }
    async fn node_session(&self, req: Request<tonic::Streaming<pb::NodeMessage>>) -> Answer<Self::NodeSessionStream> {
        self.saw("NodeSession", &req);
        Err(Status::unauthenticated("the credential is revoked"))
    }
    async fn fetch_module(&self, _: Request<pb::FetchModuleRequest>) -> Answer<Self::FetchModuleStream> {
        no()
    }
    async fn join_grid(&self, req: Request<pb::JoinGridRequest>) -> Answer<pb::JoinGridResponse> {
        self.saw("JoinGrid", &req);
        let name = format!("{}-granted", req.get_ref().name);
        Ok(Response::new(pb::JoinGridResponse { node_token: "grid_fake".into(), name, owner: String::new() }))
    }
}

/// The fake master's URL.
async fn serve(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder().add_service(MasterServer::new(fake)).serve_with_incoming(incoming),
    );
    url
}

fn config(url: &str, dir: &std::path::Path, join: Option<&str>) -> NodeConfig {
    let mut config = NodeConfig::new(url, dir);
    config.name = "alpha".into();
    config.capacity.slots = 1;
    config.capacity.memory = 64 << 20;
    config.capacity.per_job.memory = 64 << 20;
    config.join = join.map(str::to_owned);
    config
}

const JOIN: &str = "gridjoin_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000_none";

#[tokio::test]
async fn a_node_joins_once_keeps_its_credential_and_stops_when_it_is_refused() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();

    let run = Node::new(config(&url, dir.path(), Some(JOIN))).unwrap().run(std::future::pending()).await;
    let why = format!("{:#}", run.unwrap_err());
    assert!(why.contains("the master refused the node's credential: the credential is revoked"), "{why}");
    assert!(why.contains("node.token"), "{why}");
    let saved = dir.path().join(crate::credential::TOKEN_FILE);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "grid_fake\n");
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);

    // A later start needs no join token.
    let run = Node::new(config(&url, dir.path(), None)).unwrap().run(std::future::pending()).await;
    assert!(run.is_err());
    let calls = fake.calls.lock().unwrap().clone();
    let bearers = [
        ("JoinGrid", format!("Bearer {JOIN}")),
        ("NodeSession", "Bearer grid_fake".to_owned()),
        ("NodeSession", "Bearer grid_fake".to_owned()),
    ];
    assert_eq!(calls, bearers);
}

#[tokio::test]
async fn a_bearer_token_given_as_join_token_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the node never gets as far as calling.
    let bearer = grid_core::Token::generate().to_string();
    let why = Node::new(config("http://127.0.0.1:1", dir.path(), Some(&bearer)))
        .unwrap()
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{why:#}").contains("not a bearer token"), "{why:#}");
}
