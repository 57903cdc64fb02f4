//! Who submits a job and how it asks to be treated: the part of a
//! submission that is not the job itself.

/// A submission's idempotency key, tenant and priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    /// A retried submission with the same key yields the same job.
    pub key: Option<String>,
    /// Whose job it is, for fair sharing.
    pub tenant: String,
    /// Higher runs first.
    pub priority: i32,
}
