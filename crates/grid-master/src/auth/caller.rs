//! Who is calling: what the auth layer found behind a request's token, as
//! the services read it from the request's extensions.

/// What a call without a token is told.
pub const NO_TOKEN: &str = "no token: call with `authorization: Bearer <token>`";

/// The identity behind a call's bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The grid's operator: every call, every job.
    Admin,
    /// A tenant: its own jobs only.
    Tenant(String),
    /// A node serving with its credential: the name it was given at
    /// `JoinGrid`, and the tenant it runs jobs for alone (`None`: public).
    Node { token_id: String, name: String, owner: Option<String> },
    /// A join token, good for `JoinGrid` alone.
    Join { token_id: String },
}

impl Caller {
    /// The caller of a request that went through the auth layer.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<&Caller, tonic::Status> {
        req.extensions().get::<Caller>().ok_or_else(|| tonic::Status::unauthenticated(NO_TOKEN))
    }
}
