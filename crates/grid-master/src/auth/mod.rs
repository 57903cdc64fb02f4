//! Identities: who may call the master, and as whom. Every call carries a
//! bearer token; the [`layer`] checks it against the [`tokens`] registry
//! before any service runs and hands the services a [`Caller`].

pub mod caller;
pub mod layer;
mod pg_records;
mod records;
pub mod tokens;

pub use caller::Caller;
pub use layer::AuthLayer;
pub(crate) use records::write_private;
pub use tokens::Tokens;

/// The tenant an admin's submission runs as when it names none: reserved,
/// never made with a token of its own.
pub const DEFAULT_TENANT: &str = "default";

/// Idempotency keys are per tenant: the form the live state and the record
/// keep a tenant's key in. Tenant names never hold `:`.
pub fn scoped_key(tenant: &str, key: &str) -> String {
    format!("{tenant}:{key}")
}

/// The key a user gave, from the form [`scoped_key`] made.
pub fn shown_key(scoped: &str) -> &str {
    scoped.split_once(':').map_or(scoped, |(_, key)| key)
}

#[cfg(test)]
mod tests;
