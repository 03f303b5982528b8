//! The node side of berth on a swarm, and how the server reaches it.
//!
//! - `tunnel`: TLS tunnels from the server to a node's engine and router
//!   (both ends);
//! - `agent`: `berth agent`, the process on every node;
//! - `router`: the node's router container; `self_image`: berth's image,
//!   made on the node from its own binary.

pub mod agent;
pub mod router;
pub mod self_image;
pub mod tunnel;

pub use agent::{AgentError, AgentOptions, run};
