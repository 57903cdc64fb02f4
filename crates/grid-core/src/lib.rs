//! Domain types every wasm-grid party shares, the parsing of the units people
//! write (`64MiB`, `30s`, `50G/h`), directory archives, what a WebAssembly
//! header says (module or component), and the one place where these types
//! are converted to and from the wire.

pub mod archive;
pub mod capacity;
pub mod connect;
pub mod hash;
pub mod job;
pub mod log_format;
pub mod masters;
pub mod node_state;
pub mod quota;
pub mod seed;
pub mod state;
pub mod submission;
pub mod tenant;
pub mod terminal;
pub mod text;
pub mod token;
pub mod units;
pub mod usage;
pub mod wasm;
pub mod wire;

pub use capacity::{Capacity, Ceilings};
pub use hash::{HashError, ModuleHash};
pub use job::{JobReport, JobSpec, Limits, MappedDir, Outcome};
pub use log_format::LogFormat;
pub use masters::Masters;
pub use node_state::NodeState;
pub use quota::TokenBucket;
pub use state::{Attempt, AttemptEnd, COMPILING, JobState, OutputStream, UnknownState, Verdict};
pub use submission::Submission;
pub use tenant::TenantQuota;
pub use token::{JoinToken, Token, TokenKind};
pub use units::{
    FuelQuota, format_fuel, parse_duration, parse_fuel, parse_fuel_limit, parse_memory_limit, parse_size, parse_timeout,
};
