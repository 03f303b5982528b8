//! berth's domain model: names, environment variables, the manifest and its
//! validation, the desired state of a process. Pure: no I/O.

pub mod env;
pub mod layers;
pub mod manifest;
pub mod model;
pub mod names;
pub mod process;
pub mod version;

pub use manifest::{ManifestError, parse_manifest};
pub use model::*;
pub use names::*;
pub use process::{ProcessState, UnknownProcessState};
