//! Process lifecycle: starting processes and waiting for their health checks
//! (`rollout`), the one way they stop (`retire`), the health monitor
//! (`health`) and the reconciler that keeps the engine matching the store
//! (`reconcile`); `domains` keeps two releases from claiming one host.

pub mod domains;
pub mod health;
pub mod reconcile;
pub mod retire;
pub mod rollout;

pub use retire::{Retirement, retire};
pub use rollout::{batch_size, rollout, scale};
