//! Bounds on what callers hold open at once: uploads and watchers, per
//! connection and in all. A caller past a bound is refused at once rather
//! than queued, so one connection cannot hold what others need.

use crate::error::{MasterError, Result};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts one kind of call in progress, per connection and in all.
#[derive(Debug)]
pub struct Gate {
    /// What is counted, as a refusal names it: "uploads".
    what: &'static str,
    per_connection: usize,
    total: usize,
    by_connection: DashMap<String, usize>,
    all: AtomicUsize,
}

/// One call in progress; dropping it lets the next one in.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    connection: String,
}

impl Gate {
    /// At most `per_connection` calls of a kind at once on one connection,
    /// and `total` in all.
    pub fn new(what: &'static str, per_connection: usize, total: usize) -> Arc<Self> {
        Arc::new(Self { what, per_connection, total, by_connection: DashMap::new(), all: AtomicUsize::new(0) })
    }

    /// Lets one more call in from `connection`, or refuses it.
    pub fn enter(self: &Arc<Self>, connection: &str) -> Result<Permit> {
        if self.all.fetch_add(1, Ordering::AcqRel) >= self.total {
            self.all.fetch_sub(1, Ordering::AcqRel);
            return Err(MasterError::Busy(format!(
                "too many {} at once on this master (limit {}); try again later",
                self.what, self.total
            )));
        }
        let mut count = self.by_connection.entry(connection.to_owned()).or_default();
        if *count >= self.per_connection {
            drop(count);
            self.all.fetch_sub(1, Ordering::AcqRel);
            return Err(MasterError::Busy(format!(
                "too many {} at once on this connection (limit {})",
                self.what, self.per_connection
            )));
        }
        *count += 1;
        Ok(Permit { gate: self.clone(), connection: connection.to_owned() })
    }

    /// Calls in progress in all.
    pub fn in_use(&self) -> usize {
        self.all.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.by_connection.remove_if_mut(&self.connection, |_, count| {
            *count -= 1;
            *count == 0
        });
        self.gate.all.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_past_its_bound_is_refused_and_let_in_once_one_ends() {
        let gate = Gate::new("uploads", 2, 3);
        let a1 = gate.enter("a").unwrap();
        let _a2 = gate.enter("a").unwrap();
        let err = gate.enter("a").unwrap_err().to_string();
        assert_eq!(err, "too many uploads at once on this connection (limit 2)");
        let _b1 = gate.enter("b").unwrap();
        let err = gate.enter("c").unwrap_err().to_string();
        assert!(err.contains("on this master (limit 3)"), "{err}");
        drop(a1);
        assert_eq!(gate.in_use(), 2);
        let _a3 = gate.enter("a").unwrap();
        assert_eq!(gate.in_use(), 3);
    }
}
