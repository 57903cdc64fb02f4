//! A job's stdout and stderr: streamed out in chunks as the guest writes,
//! never accumulated, and cut off at the job's output limit.

use bytes::Bytes;
use grid_core::OutputStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{self, Pollable, StreamError, StreamResult};

/// A chunk of guest output.
#[derive(Debug)]
pub struct Chunk {
    /// Which stream.
    pub stream: OutputStream,
    /// The bytes.
    pub data: Bytes,
}

/// Raised (as a trap) when a job writes past its output limit.
#[derive(Debug, thiserror::Error)]
#[error("output limit of {0} bytes exceeded")]
pub struct OutputLimitHit(pub u64);

/// Shared by a job's stdout and stderr: the channel out and the byte count.
#[derive(Debug)]
pub struct OutputBudget {
    tx: mpsc::Sender<Chunk>,
    used: AtomicU64,
    limit: u64,
    exceeded: AtomicBool,
}

impl OutputBudget {
    /// A budget of `limit` bytes over both streams, sending chunks to `tx`.
    pub fn new(tx: mpsc::Sender<Chunk>, limit: u64) -> Arc<Self> {
        Arc::new(Self { tx, used: AtomicU64::new(0), limit, exceeded: AtomicBool::new(false) })
    }

    /// Whether the job wrote past its limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// The sink for one stream.
    pub fn sink(self: &Arc<Self>, stream: OutputStream) -> OutputSink {
        OutputSink { budget: self.clone(), stream }
    }
}

/// The `StdoutStream` WASI sees for one of a job's streams.
#[derive(Clone)]
pub struct OutputSink {
    budget: Arc<OutputBudget>,
    stream: OutputStream,
}

/// Largest write accepted at once.
const MAX_WRITE: usize = 64 << 10;

struct SinkStream {
    sink: OutputSink,
    permit: Option<mpsc::OwnedPermit<Chunk>>,
}

impl IsTerminal for OutputSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSink {
    fn p2_stream(&self) -> Box<dyn p2::OutputStream> {
        Box::new(SinkStream { sink: self.clone(), permit: None })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only the p2 stream is used by WASI preview 1; this adapter serves
        // any other caller with the same accounting.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SinkStream {
    async fn ready(&mut self) {
        if self.permit.is_none() {
            self.permit = self.sink.budget.tx.clone().reserve_owned().await.ok();
        }
    }
}

impl p2::OutputStream for SinkStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let budget = &self.sink.budget;
        let used = budget.used.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if used > budget.limit {
            budget.exceeded.store(true, Ordering::Relaxed);
            return Err(StreamError::Trap(wasmtime::Error::new(OutputLimitHit(budget.limit))));
        }
        let permit = self.permit.take().ok_or(StreamError::Closed)?;
        permit.send(Chunk { stream: self.sink.stream, data: bytes });
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.sink.budget.exceeded() {
            return Err(StreamError::Trap(wasmtime::Error::new(OutputLimitHit(self.sink.budget.limit))));
        }
        if self.sink.budget.tx.is_closed() {
            return Err(StreamError::Closed);
        }
        Ok(if self.permit.is_some() { MAX_WRITE } else { 0 })
    }
}
