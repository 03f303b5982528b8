//! What the API shows of store rows.

use berth_api::{Build, Release};
use berth_store::{BuildRow, ReleaseRow};

pub fn release(r: &ReleaseRow) -> Release {
    Release {
        id: r.id.clone(),
        app: r.app.clone(),
        build: r.build.clone(),
        env_version: r.env_version,
        created: r.created.clone(),
        status: r.status.clone(),
        description: r.description.clone(),
        error: r.error.clone(),
    }
}

pub fn build(b: &BuildRow) -> Build {
    Build {
        id: b.id.clone(),
        app: b.app.clone(),
        status: b.status.clone(),
        created: b.created.clone(),
        finished: b.finished.clone(),
        images: b.images.clone(),
        error: b.error.clone(),
    }
}

pub fn rack_update(u: berth_store::updates::UpdateRow) -> berth_api::RackUpdate {
    berth_api::RackUpdate {
        id: u.id,
        from_version: u.from_version,
        to_version: u.to_version,
        state: u.state,
        started: u.started,
        finished: u.finished,
        message: u.message,
    }
}
