//! A change to the record, as a store's writer takes it: the stores'
//! write-behind calls become these, applied in order, in batches.

use super::Inserted;
use crate::error::Result;
use crate::model::{JobId, NodeRecord};
use grid_core::{AttemptEnd, JobState, OutputStream, Submission, Verdict};
use tokio::sync::oneshot;

/// A change to the record.
pub(super) enum Op {
    Replica {
        id: JobId,
        number: u32,
        end: Option<AttemptEnd>,
        digest: Option<String>,
        verdict: Option<Verdict>,
        at_ms: u64,
    },
    Billed {
        tenant: String,
        runs: u64,
        fuel: u64,
    },
    Insert {
        id: JobId,
        meta: Submission,
        spec: Vec<u8>,
        submitted_ms: u64,
        fingerprint: Option<String>,
        done: oneshot::Sender<Result<Inserted>>,
    },
    Running {
        id: JobId,
        node: String,
        attempts: u32,
        at_ms: u64,
    },
    Requeued {
        id: JobId,
        attempts: u32,
        end: AttemptEnd,
        at_ms: u64,
    },
    Output {
        id: JobId,
        seq: u64,
        stream: OutputStream,
        data: Vec<u8>,
    },
    Finished {
        id: JobId,
        state: JobState,
        result: Vec<u8>,
        drop_input: bool,
        end: AttemptEnd,
        at_ms: u64,
        /// The job's tenant and the fuel its node burned, when a node ran
        /// it to this end.
        ran: Option<(String, u64)>,
    },
    Flush {
        done: oneshot::Sender<Result<()>>,
    },
    Prune {
        finished_before_ms: u64,
        done: oneshot::Sender<Result<usize>>,
    },
    Nodes(Vec<NodeRecord>),
}

impl Op {
    /// The output bytes this change carries.
    pub(super) fn output_bytes(&self) -> usize {
        if let Op::Output { data, .. } = self { data.len() } else { 0 }
    }
}
