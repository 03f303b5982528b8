//! The CLI's commands that talk to a server through `berth-client`, one module per
//! area. Each takes the parsed `cli` types, resolves the app, calls the client and
//! prints through `output` and `progress`; none calls another.

pub mod access;
pub mod apps;
pub mod backup;
pub mod builds;
pub mod certs;
pub mod drains;
pub mod env;
pub mod image;
pub mod logs;
pub mod oneoff;
pub mod processes;
pub mod rack;
pub mod releases;
pub mod resources;
pub mod source;
pub mod volumes;
