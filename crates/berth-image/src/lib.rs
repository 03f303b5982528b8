//! Images as `docker save` archives, moved between engines without a registry.
//!
//! - [`saved_image`]: what an archive holds (its layers and their chain ids)
//!   and a copy of it without some layers' data, on files (the CLI's
//!   `deploy --image`, which thins its upload to what the server lacks);
//! - [`spool`]: the same for an archive that arrives as a byte stream (an
//!   engine's export): spooled to a temp file once, then thinned for each
//!   receiver and streamed out (Swarm image distribution, one copy per node).
//!
//! Both rely on `docker load` looking a layer up by chain id first and reading
//! its data only when it lacks the layer.

pub mod saved_image;
pub mod spool;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use saved_image::{Layer, SavedImage, SavedImageError};
pub use spool::{SpoolError, SpooledSave, Thinned};
