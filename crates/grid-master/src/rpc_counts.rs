//! The layer that counts gRPC calls by method and status code for
//! `grid_rpc_requests_total`. It sits outside the auth layer, so refused
//! calls count too. The code is read from the response's headers (a
//! trailers-only response: a refusal, or an error before any message), else
//! from the trailers at the end of its body; a body dropped before its end
//! (the client went away) counts as `Canceled`.

use crate::metrics::{RpcCounts, rpc_method};
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tonic::codegen::Bytes;

/// The layer to put outermost on the master's gRPC server.
#[derive(Clone)]
pub struct RpcCountLayer {
    counts: RpcCounts,
}

impl RpcCountLayer {
    /// Counts every call in `counts`.
    pub fn new(counts: RpcCounts) -> Self {
        Self { counts }
    }
}

impl<S> tower::Layer<S> for RpcCountLayer {
    type Service = RpcCount<S>;

    fn layer(&self, inner: S) -> RpcCount<S> {
        RpcCount { inner, counts: self.counts.clone() }
    }
}

/// The service the layer wraps around the master's.
#[derive(Clone)]
pub struct RpcCount<S> {
    inner: S,
    counts: RpcCounts,
}

/// The code of `headers`' `grpc-status`, if it has one.
fn status_of(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status").and_then(|v| std::str::from_utf8(v.as_bytes()).ok()).and_then(|v| v.parse().ok())
}

/// `Canceled`: a call whose body ended without a status.
const CANCELED: i32 = 1;
/// `Unknown`: a call that failed below gRPC.
const UNKNOWN: i32 = 2;

impl<S, B> tower::Service<http::Request<B>> for RpcCount<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = rpc_method(req.uri().path());
        let counts = self.counts.clone();
        let future = self.inner.call(req);
        Box::pin(async move {
            match future.await {
                Ok(response) => match status_of(response.headers()) {
                    Some(code) => {
                        counts.count(method, code);
                        Ok(response)
                    }
                    // No status and nothing to come: not a gRPC answer.
                    None if response.body().is_end_stream() => {
                        counts.count(method, UNKNOWN);
                        Ok(response)
                    }
                    None => {
                        let tally = Tally { counts, method, counted: false };
                        Ok(response.map(|body| tonic::body::Body::new(Counted { body, tally })))
                    }
                },
                Err(e) => {
                    counts.count(method, UNKNOWN);
                    Err(e)
                }
            }
        })
    }
}

/// Counts one call once: with the code its trailers give, or as
/// `Canceled` if dropped before.
struct Tally {
    counts: RpcCounts,
    method: usize,
    counted: bool,
}

impl Tally {
    fn count(&mut self, code: i32) {
        if !std::mem::replace(&mut self.counted, true) {
            self.counts.count(self.method, code);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.count(CANCELED);
    }
}

/// A response body that counts its call when its trailers pass.
struct Counted {
    body: tonic::body::Body,
    tally: Tally,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(status_of) {
                    this.tally.count(code);
                }
            }
            Some(Err(_)) => this.tally.count(UNKNOWN),
            // An end with no trailers: no status was sent.
            None => this.tally.count(UNKNOWN),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::collections::VecDeque;
    use tower::{Layer, Service, ServiceExt};

    /// A body of `frames`, then its end.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn trailers(code: &str) -> Frame<Bytes> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", code.parse().unwrap());
        Frame::trailers(map)
    }

    /// Calls `path` on a service answering `response()`, through the layer.
    async fn call(
        counts: &RpcCounts,
        path: &str,
        response: impl Fn() -> http::Response<tonic::body::Body> + Send + Clone + 'static,
    ) -> http::Response<tonic::body::Body> {
        let inner = tower::service_fn(move |_: http::Request<()>| {
            let response = response.clone();
            async move { Ok::<_, std::convert::Infallible>(response()) }
        });
        let mut service = RpcCountLayer::new(counts.clone()).layer(inner);
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    async fn drain(response: http::Response<tonic::body::Body>) {
        let mut body = response.into_body();
        while futures::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await.is_some() {}
    }

    #[tokio::test]
    async fn a_call_counts_once_with_the_code_of_its_headers_or_its_trailers_or_as_canceled() {
        let metrics = Metrics::new();
        let counts = metrics.rpc();
        // Trailers-only: a refusal.
        let refused =
            || http::Response::builder().header("grpc-status", "16").body(tonic::body::Body::empty()).unwrap();
        drain(call(counts, "/grid.v1.Master/ListJobs", refused).await).await;
        assert_eq!(counts.get("ListJobs", "Unauthenticated"), 1);
        // Messages, then the status in the trailers.
        let streamed = || {
            let frames = Frames(VecDeque::from([Frame::data(Bytes::from_static(b"msg")), trailers("0")]));
            http::Response::new(tonic::body::Body::new(frames))
        };
        let response = call(counts, "/grid.v1.Master/WatchJob", streamed).await;
        assert_eq!(counts.get("WatchJob", "OK"), 0, "not counted before the end");
        drain(response).await;
        assert_eq!(counts.get("WatchJob", "OK"), 1);
        // A stream the client dropped before its end.
        let response = call(counts, "/grid.v1.Master/WatchJob", streamed).await;
        drop(response);
        assert_eq!(counts.get("WatchJob", "Canceled"), 1);
        assert_eq!(counts.get("WatchJob", "OK"), 1, "counted once");
        // Not a method of the master's.
        drain(call(counts, "/grid.v1.Nope/X", refused).await).await;
        assert_eq!(counts.get("other", "Unauthenticated"), 1);
    }
}
