//! A job's events as watchers see them: an append-only log with a signal
//! that wakes watchers. A watcher holds the log, not the master's state, so
//! following a job never takes the state's lock.

use crate::model::JobEvent;
use grid_core::JobReport;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The events of one job, in order.
pub struct EventLog {
    events: Mutex<Vec<JobEvent>>,
    /// Bumped with every event, so watchers wake.
    changed: watch::Sender<usize>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self { events: Mutex::default(), changed: watch::channel(0).0 }
    }
}

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Vec<JobEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event and wakes the watchers.
    pub fn push(&self, event: JobEvent) {
        let len = {
            let mut events = self.lock();
            events.push(event);
            events.len()
        };
        self.changed.send_replace(len);
    }

    /// The report of the job's end, if it has ended.
    pub fn result(&self) -> Option<Arc<JobReport>> {
        self.lock().iter().rev().find_map(|e| match e {
            JobEvent::Finished(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// A watcher from the first event.
    pub fn watch(self: &Arc<Self>) -> JobWatch {
        JobWatch { log: self.clone(), seen: 0, changed: self.changed.subscribe() }
    }
}

/// A watcher's handle on a job's events.
pub struct JobWatch {
    log: Arc<EventLog>,
    seen: usize,
    changed: watch::Receiver<usize>,
}

impl JobWatch {
    /// The events not yet returned, without waiting.
    pub fn now(&mut self) -> Vec<JobEvent> {
        let events = self.log.lock();
        let batch = events[self.seen..].to_vec();
        self.seen = events.len();
        batch
    }

    /// The next events, waiting for at least one. `None` after the job's
    /// `Finished` event has been returned.
    pub async fn next(&mut self) -> Option<Vec<JobEvent>> {
        loop {
            {
                let events = self.log.lock();
                if self.seen > 0 && matches!(events.get(self.seen - 1), Some(JobEvent::Finished(_))) {
                    return None;
                }
                if events.len() > self.seen {
                    let batch = events[self.seen..].to_vec();
                    self.seen = events.len();
                    return Some(batch);
                }
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Limits, Outcome, OutputStream};

    #[tokio::test]
    async fn a_watcher_sees_every_event_once_and_stops_after_the_end() {
        let log = Arc::new(EventLog::default());
        log.push(JobEvent::Assigned("a".into()));
        let mut w = log.watch();
        assert_eq!(w.next().await.unwrap().len(), 1);
        log.push(JobEvent::Output(OutputStream::Stdout, b"x".to_vec()));
        let report = JobReport::before_start(Outcome::Exited(0), "a", &Limits::default());
        log.push(JobEvent::Finished(Arc::new(report)));
        assert_eq!(w.next().await.unwrap().len(), 2);
        assert!(w.next().await.is_none());
        assert!(w.now().is_empty());
        assert_eq!(log.watch().now().len(), 3, "a new watcher starts from the first event");
        assert!(log.result().is_some());
    }
}
