//! The one error type of berth's operations. Each variant is a kind of
//! failure (the request is wrong, a thing is missing, the engine is away…) with
//! a message that names the thing and the fix; the HTTP layer maps kinds to
//! statuses in one place (`http::error`).

use berth_runtime::RuntimeError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Manifest(#[from] berth_core::ManifestError),
    #[error("{0}")]
    Name(#[from] berth_core::NameError),
    /// The request is wrong as given.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the state things are in.
    #[error("{0}")]
    Conflict(String),
    /// More than the server takes (an upload over `--max-upload`).
    #[error("{0}")]
    TooLarge(String),
    /// Work that ran and did not succeed (a rollout, a build step); `logs` are
    /// the failing process's last lines.
    #[error("{message}")]
    Failed { message: String, logs: Vec<String> },
    /// Something berth needs does not answer right now (the engine).
    #[error("{0}")]
    Unavailable(String),
    /// The data dir's disk is full; the message says where and how to fix it.
    #[error("{0}")]
    DiskFull(String),
    /// berth's own fault (a certificate it could not generate, a task that panicked).
    #[error("{0}")]
    Internal(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the engine itself is unreachable (as opposed to answering with an error).
    pub fn engine_unreachable(&self) -> bool {
        matches!(self, Error::Runtime(e) if crate::engine::is_unreachable(e))
    }
}
