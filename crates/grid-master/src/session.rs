//! What a node sends in its session, read until the session ends: the
//! node's heartbeats, output and results go to the live state. The loop
//! ends when the node is silent for too long, closes its stream, the master
//! shuts down, or the node leaves the live state (its credential revoked),
//! whether or not the node still reads what the master sends it. While the
//! record's writer is behind on output, the node is not read (its silence
//! is counted from when reading starts again).

use crate::model::{Heartbeat, NodeId};
use crate::nodes::MAX_CACHED_PER_NODE;
use crate::state::LiveState;
use futures::{Stream, StreamExt as _};
use grid_core::{ModuleHash, NodeState};
use grid_proto as pb;
use std::future::Future;
use std::time::Duration;
use tonic::Status;

/// Reads node `node_id`'s messages from `inbound` into `live` until the
/// session ends, then tells `live` the node is gone and why. A node silent
/// for `silence` is lost; `closing` resolves when the master shuts down.
pub async fn read_node<S>(
    live: &LiveState,
    node_id: NodeId,
    mut inbound: S,
    silence: Duration,
    closing: impl Future<Output = ()>,
) where
    S: Stream<Item = Result<pb::NodeMessage, Status>> + Unpin,
{
    let mut closing = std::pin::pin!(closing);
    let mut ended = live.session_ended(node_id);
    let backlog = live.store().backlog();
    let (why, state) = loop {
        // A record that fell behind a flood of output is waited for: the
        // rest waits in the node, not here.
        if let Some(backlog) = backlog.as_ref().filter(|b| b.full()) {
            tokio::select! {
                () = backlog.room() => {}
                _ = &mut closing => break ("the master is shutting down".to_string(), NodeState::Gone),
                _ = &mut ended => break ("its session was ended".to_string(), NodeState::Lost),
            }
        }
        let next = tokio::select! {
            next = tokio::time::timeout(silence, inbound.next()) => next,
            _ = &mut closing => break ("the master is shutting down".to_string(), NodeState::Gone),
            _ = &mut ended => break ("its session was ended".to_string(), NodeState::Lost),
        };
        let msg = match next {
            Err(_) => break ("missed heartbeats".to_string(), NodeState::Lost),
            Ok(Some(Err(status))) => break (format!("stream broke: {}", status.message()), NodeState::Lost),
            Ok(None) => break ("stream closed".to_string(), NodeState::Gone),
            Ok(Some(Ok(pb::NodeMessage { msg: None }))) => continue,
            Ok(Some(Ok(pb::NodeMessage { msg: Some(m) }))) => m,
        };
        use pb::node_message::Msg;
        match msg {
            Msg::Register(_) => break ("registered twice".to_string(), NodeState::Lost),
            Msg::Heartbeat(hb) => {
                // A node's cache holds at most so many modules; a heartbeat
                // claiming more is cut, not believed.
                let parse = |v: Vec<String>| {
                    v.iter().take(MAX_CACHED_PER_NODE).filter_map(|h| ModuleHash::parse(h).ok()).collect()
                };
                let beat = Heartbeat {
                    cached_added: parse(hb.cached_added),
                    cached_removed: parse(hb.cached_removed),
                    fuel_available: hb.fuel_available,
                    draining: hb.draining,
                };
                live.heartbeat(node_id, beat);
            }
            Msg::Output(out) => {
                let stream = grid_core::wire::output_stream(out.stream);
                live.job_output(node_id, &out.job_id, stream, out.data);
            }
            Msg::Finished(f) => {
                let report = f.result.unwrap_or_default().into();
                live.job_finished(node_id, &f.job_id, report);
            }
            Msg::Rejected(r) => live.job_rejected(node_id, &r.job_id, &r.reason),
            Msg::Compiling(c) => live.job_compiling(node_id, &c.job_id, c.done),
        }
    };
    live.node_gone(node_id, &why, state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::node;

    #[tokio::test]
    async fn a_revoked_node_that_reads_nothing_is_no_longer_read() {
        let live = std::sync::Arc::new(LiveState::default());
        // The node neither reads its orders nor closes its stream.
        let (id, _orders) = live.register_node(node("a")).unwrap();
        let silent = futures::stream::pending::<Result<pb::NodeMessage, Status>>();
        let reading = {
            let live = live.clone();
            let hour = Duration::from_secs(3600);
            tokio::spawn(async move { read_node(&live, id, silent, hour, std::future::pending()).await })
        };
        assert!(live.drop_node_named("a", "revoked"));
        // A bound only so that a broken build fails instead of hanging.
        let ended = tokio::time::timeout(Duration::from_secs(30), reading).await;
        assert!(ended.is_ok(), "the session's read loop still runs");
        assert!(live.nodes().is_empty());
    }
}
