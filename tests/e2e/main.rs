//! End-to-end tests: a real `grid-master` and real `grid-node` processes on
//! loopback, driven by the real `grid-cli`.

mod errors;
mod guests;
mod limits;
mod recovery;
mod running;
