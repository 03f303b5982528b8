//! The rack's settings that change while it runs (`berth rack settings`,
//! `berth rack set`): the app log retention. Values set at run time are kept
//! in the store's meta table and win over the server's flags, which give the
//! values only while nothing was set.

use crate::error::Error;
use crate::logs::Retention;
use crate::rack::Rack;
use berth_api::{RackSettings, RackSettingsChange};
use berth_store::Store;

const RETENTION_KEY: &str = "log_retention_secs";
const MAX_SIZE_KEY: &str = "log_max_size_bytes";

/// The shortest retention and smallest size bound accepted.
pub const MIN_RETENTION_SECS: u64 = 60;
pub const MIN_MAX_SIZE: u64 = 1024 * 1024;

/// The retention in force: what was set at run time, else `flags`.
pub fn stored_retention(store: &Store, flags: Retention) -> Result<Retention, Error> {
    let read = |key: &str, default: u64| -> Result<u64, Error> {
        Ok(store
            .meta(key)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(default))
    };
    Ok(Retention {
        max_age_secs: read(RETENTION_KEY, flags.max_age_secs)?,
        max_bytes: read(MAX_SIZE_KEY, flags.max_bytes)?,
    })
}

pub fn get(rack: &Rack) -> RackSettings {
    let retention = rack.logs.retention();
    RackSettings {
        log_retention_secs: retention.max_age_secs,
        log_max_size_bytes: retention.max_bytes,
    }
}

/// Checks every value, then stores and applies them all (none if one is wrong).
pub fn change(rack: &Rack, change: &RackSettingsChange) -> Result<RackSettings, Error> {
    if let Some(secs) = change.log_retention_secs
        && secs < MIN_RETENTION_SECS
    {
        return Err(Error::Invalid(format!(
            "log-retention {secs}s is too short; keep logs at least {MIN_RETENTION_SECS}s (1m), e.g. log-retention=3d"
        )));
    }
    if let Some(bytes) = change.log_max_size_bytes
        && bytes < MIN_MAX_SIZE
    {
        return Err(Error::Invalid(format!(
            "log-max-size {bytes} bytes is too small; allow at least 1MiB per app, e.g. log-max-size=500MiB"
        )));
    }
    let mut retention = rack.logs.retention();
    if let Some(secs) = change.log_retention_secs {
        rack.store.set_meta(RETENTION_KEY, &secs.to_string())?;
        retention.max_age_secs = secs;
    }
    if let Some(bytes) = change.log_max_size_bytes {
        rack.store.set_meta(MAX_SIZE_KEY, &bytes.to_string())?;
        retention.max_bytes = bytes;
    }
    rack.logs.set_retention(retention);
    tracing::info!(
        retention_secs = retention.max_age_secs,
        max_size_bytes = retention.max_bytes,
        "log retention changed"
    );
    Ok(get(rack))
}
