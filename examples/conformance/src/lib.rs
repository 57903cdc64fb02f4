//! WASI preview 1 conformance programs, one binary each under `src/bin/`,
//! in the manner of the WASI testsuite: each has a manifest under
//! `manifests/` (its arguments, environment, preopened directories, stdin,
//! and the exit code and stdout it must give). The grid's tests run every
//! one through `grid-cli run` and under `wasmtime run` and hold both to the
//! manifest, so that conformance cannot regress unnoticed.
