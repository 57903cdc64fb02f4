//! End-to-end tests: a real `grid-master` and real `grid-node` processes on
//! loopback, driven by the real `grid-cli`.

mod abuse;
mod components;
mod errors;
mod guests;
mod hostile;
mod languages;
mod limits;
mod quotas;
mod recovery;
mod running;
mod scaffold;
mod scheduling;
mod sdk;
mod sharing;
mod shutdown;
mod verbs;
