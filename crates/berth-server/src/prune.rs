//! `berth rack prune`: what berth left on the engine that nothing needs.

use crate::error::Result;
use crate::rack::Rack;
use berth_api::PruneReport;
use berth_runtime::{ContainerState, LABEL_APP, LABEL_BUILD, LABEL_PROCESS, LABEL_RACK};
use std::collections::{BTreeMap, BTreeSet};

/// Removes exited containers of this rack that no process row wants, volume
/// helpers a crash left, and images no kept build uses or whose app is gone.
pub async fn prune(rack: &Rack) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let rows: BTreeSet<(String, String)> = rack
        .store
        .processes(None)?
        .into_iter()
        .map(|p| (p.app, p.id))
        .collect();
    for c in rack
        .runtime
        .list_containers(LABEL_RACK, &rack.rack_id)
        .await?
    {
        if c.labels.get(LABEL_RACK) != Some(&rack.rack_id) {
            continue;
        }
        if !matches!(c.state, ContainerState::Exited { .. }) {
            continue;
        }
        // A stopped process that still has a row is the reconciler's to replace.
        let app = c.labels.get(LABEL_APP).cloned().unwrap_or_default();
        if let Some(p) = c.labels.get(LABEL_PROCESS)
            && rows.contains(&(app, p.clone()))
        {
            continue;
        }
        rack.runtime.remove_container(&c.id).await?;
        report.containers += 1;
    }
    // Volume helpers a crash or a dropped connection left behind.
    for c in rack
        .runtime
        .list_containers(crate::volumes::LABEL_HELPER_RACK, &rack.rack_id)
        .await?
    {
        if c.labels.get(crate::volumes::LABEL_HELPER_RACK) != Some(&rack.rack_id)
            || c.state == ContainerState::Running
            || crate::volumes::helper_in_use(&c.id)
        {
            continue;
        }
        rack.runtime.remove_container(&c.id).await?;
        report.containers += 1;
    }
    let apps: BTreeSet<String> = rack.store.apps()?.into_iter().map(|a| a.name).collect();
    let mut kept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for app in &apps {
        kept.insert(app.clone(), crate::builds::kept_builds(rack, app)?);
    }
    for image in rack.runtime.list_images(LABEL_RACK, &rack.rack_id).await? {
        if image.labels.get(LABEL_RACK) != Some(&rack.rack_id) {
            continue;
        }
        let app = image.labels.get(LABEL_APP);
        // Source builds carry their build in the tag (`berth/<app>:<build>`, a label
        // would cost the build cache); loaded images also in a label. Identical
        // builds share one image under several tags.
        let mut builds: Vec<String> = image.labels.get(LABEL_BUILD).cloned().into_iter().collect();
        if let Some(app) = app {
            builds.extend(
                image
                    .tags
                    .iter()
                    .filter_map(|t| crate::builds::build_of_tag(app, t).map(str::to_string)),
            );
        }
        let keep = match app {
            Some(app) if !builds.is_empty() => kept
                .get(app)
                .is_some_and(|k| builds.iter().any(|b| k.contains(b))),
            // Not made by a build: leave it to whoever made it.
            Some(app) => apps.contains(app),
            None => true,
        };
        if keep {
            continue;
        }
        let size = rack
            .runtime
            .image_details(&image.id)
            .await?
            .map(|d| d.size)
            .unwrap_or(0);
        // An image a stopped container still uses can't go; the next prune gets it.
        let mut removed = true;
        for tag in &image.tags {
            removed &= rack.runtime.remove_image(tag).await.is_ok();
        }
        if removed && rack.runtime.image_exists(&image.id).await? {
            removed = rack.runtime.remove_image(&image.id).await.is_ok();
        }
        if removed {
            report.images += 1;
            report.bytes += size;
        }
    }
    tracing::info!(
        containers = report.containers,
        images = report.images,
        bytes = report.bytes,
        "rack pruned"
    );
    Ok(report)
}
