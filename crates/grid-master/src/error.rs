//! The master's errors, and their one mapping to gRPC statuses.

use grid_core::{HashError, ModuleHash};
use std::path::PathBuf;

/// Everything a master call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("module `{0}` is not in the store: upload it first")]
    ModuleNotFound(ModuleHash),
    #[error("no job `{0}`")]
    JobNotFound(String),
    #[error("module is {size} bytes, over the master's limit of {limit} bytes")]
    ModuleTooLarge { size: u64, limit: u64 },
    #[error("invalid module: {0}")]
    InvalidModule(String),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no connected node takes this job: {0}")]
    NoNodeTakes(String),
    #[error("node protocol error: {0}")]
    Protocol(String),
    #[error("job record: {0}")]
    Db(String),
    /// The master is at a bound the operator set: try again later.
    #[error("{0}")]
    Busy(String),
    /// A caller stopped sending.
    #[error("{0}")]
    Stalled(String),
    /// The request clashes with one recorded before (an idempotency key
    /// reused for another job).
    #[error("{0}")]
    Conflict(String),
    /// A tenant or token that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The call carries no credential this master accepts.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not make this call.
    #[error("{0}")]
    Refused(String),
    /// The job is over a per-job maximum of its tenant's quota.
    #[error("{0}")]
    OverQuota(String),
    /// The tenant has its most jobs waiting.
    #[error("{0}")]
    TenantFull(String),
    /// A node registered with the name of another connected node.
    #[error("a node named `{0}` is already connected; give this node another --name")]
    NameTaken(String),
    /// The master is shutting down and takes no new work.
    #[error("the master is shutting down")]
    ShuttingDown,
    /// This master does not lead (it is a standby, or lost its lease).
    #[error("{0}")]
    NotLeader(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("i/o error on `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The master's result type.
pub type Result<T, E = MasterError> = std::result::Result<T, E>;

impl MasterError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| MasterError::Io { path, source }
    }

    /// An upload that sent nothing for `idle`: dropped, with its partial file.
    pub(crate) fn upload_stalled(idle: std::time::Duration) -> Self {
        MasterError::Stalled(format!("upload stalled: no data for {}", grid_core::units::format_duration(idle)))
    }
}

impl From<grid_core::UnknownState> for MasterError {
    fn from(e: grid_core::UnknownState) -> Self {
        MasterError::InvalidArgument(e.to_string())
    }
}

impl From<grid_core::wire::WireError> for MasterError {
    fn from(e: grid_core::wire::WireError) -> Self {
        MasterError::InvalidArgument(format!("invalid job spec: {e}"))
    }
}

impl From<MasterError> for tonic::Status {
    fn from(e: MasterError) -> Self {
        use tonic::Status;
        let msg = e.to_string();
        match e {
            MasterError::ModuleNotFound(_) => Status::failed_precondition(msg),
            MasterError::JobNotFound(_) | MasterError::NotFound(_) => Status::not_found(msg),
            MasterError::ModuleTooLarge { .. } => Status::resource_exhausted(msg),
            MasterError::InvalidModule(_) | MasterError::Hash(_) | MasterError::InvalidArgument(_) => {
                Status::invalid_argument(msg)
            }
            MasterError::Protocol(_) | MasterError::NoNodeTakes(_) => Status::failed_precondition(msg),
            MasterError::Busy(_) | MasterError::TenantFull(_) => Status::resource_exhausted(msg),
            MasterError::OverQuota(_) => Status::failed_precondition(msg),
            MasterError::Stalled(_) => Status::deadline_exceeded(msg),
            MasterError::Refused(_) => Status::permission_denied(msg),
            MasterError::Unauthenticated(_) => Status::unauthenticated(msg),
            MasterError::Conflict(_) => Status::already_exists(msg),
            MasterError::NameTaken(_) => Status::already_exists(msg),
            MasterError::ShuttingDown | MasterError::NotLeader(_) => Status::unavailable(msg),
            MasterError::Io { .. } | MasterError::Db(_) | MasterError::Internal(_) => Status::internal(msg),
        }
    }
}
