//! End-to-end tests: a real `grid-master` and real `grid-node` processes on
//! loopback, driven by the real `grid-cli`.

mod abuse;
mod cli_tools;
mod compiling;
mod components;
mod dashboard;
mod deterministic;
mod embedded;
mod errors;
mod flags;
mod guests;
mod hostile;
mod http_api;
mod languages;
mod limits;
mod masters;
mod metrics;
mod pipes;
mod proposals;
mod quotas;
mod records;
mod recovery;
mod results;
mod running;
mod scaffold;
mod scheduling;
mod sdk;
mod shared_identity;
mod sharing;
mod shutdown;
mod signals;
mod standing;
mod tenants;
mod trust;
mod verbs;
mod verification;
