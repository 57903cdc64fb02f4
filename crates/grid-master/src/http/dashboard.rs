//! The dashboard: static pages and scripts built into the binary, served
//! at `/`. They read everything they show from the API.

use axum::Router;

/// The dashboard's routes: `/` and its assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}
