//! The wasm-grid wire protocol: `proto/grid.proto` and the code tonic and
//! prost generate from it. Nothing else lives here.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("grid.v1");
