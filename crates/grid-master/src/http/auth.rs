//! Who is calling over HTTP: a bearer token, or the login cookie (with the
//! CSRF header on anything that changes state), turned into the same
//! [`Caller`] the gRPC auth layer hands the services.

use super::Api;
use super::error::ApiError;
use crate::auth::Caller;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use std::net::SocketAddr;

/// The login cookie's name.
pub const COOKIE: &str = "grid_token";
/// The header a cookie-authenticated request that changes state carries.
pub const CSRF_HEADER: &str = "x-grid-csrf";
/// The longest token text looked at.
const MAX_TOKEN: usize = 512;

/// The peer of a connection, as the HTTP server accepted it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// An authenticated request's caller, and where it came from.
#[derive(Debug, Clone)]
pub struct Who {
    pub caller: Caller,
    /// The client's address with port 0: bounds count per client, not per
    /// connection, since a browser opens several.
    pub client: SocketAddr,
}

impl Who {
    /// A tonic request carrying `msg`, as the gRPC auth layer would hand it
    /// to the services: with the caller and the client in its extensions.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.extensions_mut().insert(self.caller.clone());
        req.extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo { local_addr: None, remote_addr: Some(self.client) });
        req
    }

    /// Who asks the services for this caller: a node credential, which
    /// gRPC lets look at no job, asks as the admin (the handler then cuts
    /// the answer to what a volunteer may see); anyone else as itself.
    pub fn asker(&self) -> Who {
        match self.caller {
            Caller::Node { .. } => Who { caller: Caller::Admin, client: self.client },
            _ => self.clone(),
        }
    }

    /// The node's name, for a node credential.
    pub fn node(&self) -> Option<&str> {
        match &self.caller {
            Caller::Node { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Refuses anyone but the admin.
    pub fn admin_only(&self) -> Result<(), ApiError> {
        match self.caller {
            Caller::Admin => Ok(()),
            _ => Err(ApiError::forbidden("only the admin may do this (that takes the admin token)")),
        }
    }

    /// Refuses a node credential: for what only the admin or a tenant may do.
    pub fn client_only(&self) -> Result<(), ApiError> {
        match self.caller {
            Caller::Admin | Caller::Tenant(_) => Ok(()),
            _ => Err(ApiError::forbidden("a node token cannot submit or look at jobs' inputs and output")),
        }
    }
}

/// The token a request carries, and whether it came in the cookie.
pub fn token_of(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        return Some((crate::auth::layer::bearer(text)?.to_owned(), false));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(|t| (t.trim().to_owned(), true)))
}

/// The caller behind `token`, refused at once when it is no token the HTTP
/// API serves.
pub fn authenticate(api: &Api, token: &str) -> Result<Caller, ApiError> {
    if token.len() > MAX_TOKEN {
        return Err(ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "the token is not one this master issued"));
    }
    let caller = api.tokens.authenticate(token)?;
    if let Caller::Join { .. } = caller {
        return Err(ApiError::forbidden("a join token cannot use the HTTP API (it is for `grid-node --join`)"));
    }
    Ok(caller)
}

impl FromRequestParts<Api> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let Some((token, by_cookie)) = token_of(&parts.headers) else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "no token: send `Authorization: Bearer <token>` or log in",
            ));
        };
        let caller = authenticate(api, &token)?;
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if by_cookie && changes && parts.headers.get(CSRF_HEADER).is_none_or(|v| v.as_bytes() != b"1") {
            return Err(ApiError::forbidden(
                "a request signed in by the cookie that changes anything must carry `X-Grid-Csrf: 1`",
            ));
        }
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0.0);
        let ip = peer.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
        Ok(Who { caller, client: SocketAddr::new(ip, 0) })
    }
}
