//! The auth layer: before any service runs (so before a body is read, an
//! upload accepted or a stream opened) it reads the call's bearer token,
//! checks it and the method against the kinds that may call it, and puts
//! the [`Caller`] in the request's extensions, or answers with the refusal
//! at once.

use super::caller::{Caller, NO_TOKEN};
use super::tokens::Tokens;
use crate::error::MasterError;
use futures::future::{Either, Ready, ready};
use grid_core::token::TokenKind;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;

/// Which calls a method is among: who may make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Submitting and looking at jobs: the admin or a tenant.
    Client,
    /// Serving jobs: a node.
    Node,
    /// Joining the grid: a join token.
    Join,
    /// Running the grid: the admin.
    Admin,
}

impl Calls {
    /// The calls gRPC method `path` is among; `None` for a method the
    /// master does not serve.
    pub fn of(path: &str) -> Option<Self> {
        if let Some(method) = path.strip_prefix("/grid.v1.Admin/") {
            return (!method.is_empty() && !method.contains('/')).then_some(Calls::Admin);
        }
        Some(match path.strip_prefix("/grid.v1.Master/")? {
            "MissingModules" | "UploadModule" | "SubmitJob" | "WatchJob" | "RunJob" | "CancelJob" | "GetJob"
            | "ListJobs" | "ListNodes" => Calls::Client,
            "NodeSession" | "FetchModule" => Calls::Node,
            "JoinGrid" => Calls::Join,
            _ => return None,
        })
    }

    /// Whether a token of `kind` may make these calls.
    pub fn allow(self, kind: TokenKind) -> bool {
        matches!(
            (self, kind),
            (Calls::Client, TokenKind::Admin | TokenKind::Tenant)
                | (Calls::Node, TokenKind::Node)
                | (Calls::Join, TokenKind::Join)
                | (Calls::Admin, TokenKind::Admin)
        )
    }

    fn what(self) -> &'static str {
        match self {
            Calls::Client => "submit or look at jobs",
            Calls::Node => "serve as a node",
            Calls::Join => "join the grid (that takes a join token)",
            Calls::Admin => "administer the grid (that takes the admin token)",
        }
    }
}

fn kind_of(caller: &Caller) -> TokenKind {
    match caller {
        Caller::Admin => TokenKind::Admin,
        Caller::Tenant(_) => TokenKind::Tenant,
        Caller::Node { .. } => TokenKind::Node,
        Caller::Join { .. } => TokenKind::Join,
    }
}

/// The token an `authorization` header value carries (`Bearer TOKEN`).
pub(crate) fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

/// The caller of a call to `path` with `authorization` header value
/// `header`, or the status it is refused with.
pub fn authorize(tokens: &Tokens, path: &str, header: Option<&[u8]>) -> Result<Caller, Status> {
    let header = header.ok_or_else(|| Status::unauthenticated(NO_TOKEN))?;
    let text = std::str::from_utf8(header).ok().and_then(bearer).ok_or_else(|| Status::unauthenticated(NO_TOKEN))?;
    let caller = tokens.authenticate(text).map_err(Status::from)?;
    let Some(calls) = Calls::of(path) else {
        return Err(Status::unimplemented(format!("no method `{}` on this master", grid_core::text::cut(path, 128))));
    };
    let kind = kind_of(&caller);
    if !calls.allow(kind) {
        let article = if kind == TokenKind::Admin { "an" } else { "a" };
        return Err(MasterError::Refused(format!("{article} {kind} token cannot {}", calls.what())).into());
    }
    Ok(caller)
}

/// The layer to put in front of the master's services.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Arc<Tokens>,
}

impl AuthLayer {
    /// Checks every call against `tokens`.
    pub fn new(tokens: Arc<Tokens>) -> Self {
        Self { tokens }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, tokens: self.tokens.clone() }
    }
}

/// The service the layer wraps around the master's.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Arc<Tokens>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let header = req.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match authorize(&self.tokens, req.uri().path(), header) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Either::Left(self.inner.call(req))
            }
            Err(status) => {
                tracing::debug!(path = req.uri().path(), code = ?status.code(), "call refused: {}", status.message());
                Either::Right(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::TenantQuota;
    use tonic::Code;

    /// What a call to `method` with `token` gets: the caller's kind, or the
    /// refusal's code and message.
    fn check(tokens: &Tokens, token: Option<&str>, method: &str) -> Result<TokenKind, (Code, String)> {
        let header = token.map(|t| format!("Bearer {t}"));
        authorize(tokens, method, header.as_deref().map(str::as_bytes))
            .map(|c| kind_of(&c))
            .map_err(|s| (s.code(), s.message().to_owned()))
    }

    #[test]
    fn each_kind_calls_only_its_own_methods() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        let admin = tokens.issue_admin().unwrap().to_string();
        let tenant = tokens.create_tenant("alice", TenantQuota::default()).unwrap().2.to_string();
        let node = tokens.issue_node("n1").unwrap().to_string();
        let (info, join) = tokens.issue_join(None, None, None).unwrap();
        let join = grid_core::token::JoinToken { token: join, ca_pin: Some([1; 32]) }.to_string();
        let master = |m: &str| format!("/grid.v1.Master/{m}");
        let client = ["MissingModules", "UploadModule", "SubmitJob", "WatchJob", "RunJob", "CancelJob", "GetJob"];
        for m in client.iter().chain(&["ListJobs", "ListNodes"]) {
            assert_eq!(check(&tokens, Some(&admin), &master(m)), Ok(TokenKind::Admin));
            assert_eq!(check(&tokens, Some(&tenant), &master(m)), Ok(TokenKind::Tenant));
            let refused = Err((Code::PermissionDenied, "a node token cannot submit or look at jobs".into()));
            assert_eq!(check(&tokens, Some(&node), &master(m)), refused);
            assert_eq!(check(&tokens, Some(&join), &master(m)).unwrap_err().0, Code::PermissionDenied);
        }
        for m in ["NodeSession", "FetchModule"] {
            assert_eq!(check(&tokens, Some(&node), &master(m)), Ok(TokenKind::Node));
            let refused = Err((Code::PermissionDenied, "a tenant token cannot serve as a node".into()));
            assert_eq!(check(&tokens, Some(&tenant), &master(m)), refused);
            assert_eq!(check(&tokens, Some(&admin), &master(m)).unwrap_err().0, Code::PermissionDenied);
        }
        assert_eq!(check(&tokens, Some(&join), &master("JoinGrid")), Ok(TokenKind::Join));
        assert_eq!(check(&tokens, Some(&node), &master("JoinGrid")).unwrap_err().0, Code::PermissionDenied);
        for m in ["CreateTenant", "ListTokens", "RevokeNode"] {
            let path = format!("/grid.v1.Admin/{m}");
            assert_eq!(check(&tokens, Some(&admin), &path), Ok(TokenKind::Admin));
            let refused = Err((
                Code::PermissionDenied,
                "a tenant token cannot administer the grid (that takes the admin token)".into(),
            ));
            assert_eq!(check(&tokens, Some(&tenant), &path), refused);
        }
        // No token, a bad one, a revoked one: unauthenticated, whatever the method.
        for path in [master("SubmitJob"), "/grid.v1.Admin/ListTokens".into(), "/grpc.health.v1.Health/Check".into()] {
            assert_eq!(check(&tokens, None, &path), Err((Code::Unauthenticated, NO_TOKEN.into())));
            let bad = Err((Code::Unauthenticated, "the token is not one this master issued".into()));
            assert_eq!(check(&tokens, Some("grid_nope"), &path), bad);
        }
        assert_eq!(
            authorize(&tokens, &master("GetJob"), Some(tenant.as_bytes())).unwrap_err().message(),
            NO_TOKEN,
            "the header is `Bearer <token>`"
        );
        // A method the master does not serve is not served to anyone.
        assert_eq!(check(&tokens, Some(&admin), "/grpc.health.v1.Health/Check").unwrap_err().0, Code::Unimplemented);
        assert_eq!(check(&tokens, Some(&admin), &master("Nope")).unwrap_err().0, Code::Unimplemented);
        tokens.revoke(&info.id).unwrap();
        let revoked = Err((Code::Unauthenticated, "the token was revoked".into()));
        assert_eq!(check(&tokens, Some(&join), &master("JoinGrid")), revoked);
    }

    #[tokio::test]
    async fn a_refused_call_never_reaches_the_service() {
        use tower::{Layer, ServiceExt};
        let dir = tempfile::tempdir().unwrap();
        let tokens = Arc::new(Tokens::open(dir.path()).unwrap());
        let admin = tokens.issue_admin().unwrap().to_string();
        let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = reached.clone();
        let inner = tower::service_fn(move |req: http::Request<()>| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let caller = req.extensions().get::<Caller>().cloned();
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(format!("{caller:?}"))) }
        });
        let svc = AuthLayer::new(tokens).layer(inner);
        let call = |token: Option<&str>| {
            let mut req = http::Request::builder().uri("/grid.v1.Master/SubmitJob");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            svc.clone().oneshot(req.body(()).unwrap())
        };
        let refused = call(None).await.unwrap();
        assert_eq!(refused.headers()["grpc-status"], (Code::Unauthenticated as i32).to_string().as_str());
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
        let served = call(Some(&admin)).await.unwrap();
        assert_eq!(served.into_body(), "Some(Admin)");
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
