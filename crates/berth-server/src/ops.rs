//! Day-two operations that are not volumes: releasing an uploaded image
//! (`docker save` → load → release), pruning what berth left on the engine,
//! and the release info view.

use crate::api::{ApiError, check_app, promote_release, release_json, spool, stream_work};
use crate::builder::KEEP_RELEASES;
use crate::deploy::{Progress, step};
use crate::rack::{Rack, RackError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::{Event, PruneReport, ReleaseInfo};
use berth_core::ImageSource;
use berth_runtime::{
    BuildRequest, ContainerState, LABEL_APP, LABEL_BUILD, LABEL_PROCESS, LABEL_RACK,
};
use berth_store::ReleaseRow;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
pub struct ImageQuery {
    /// The image's name on the client's engine (`docker save NAME`).
    image: String,
    /// The manifest to release it with; absent: one `web` service on the
    /// image's first exposed TCP port.
    manifest_text: Option<String>,
}

/// The manifest an image is released with when the user has none.
pub fn default_manifest(port: Option<u16>) -> String {
    let mut text = String::from(
        "# Made by `berth deploy --image`: one service running the uploaded image.\nservices:\n  web:\n    build: .\n",
    );
    if let Some(p) = port {
        text.push_str(&format!("    port: {p}\n"));
    }
    text
}

/// `POST /apps/{app}/image`: body is a `docker save` tar.
pub async fn deploy_image(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Query(q): Query<ImageQuery>,
    body: Body,
) -> ApiResult<Response> {
    check_app(&rack, &app)?;
    if q.image.trim().is_empty() || q.image.chars().any(char::is_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} is not an image name; give one like `shop:latest`",
                q.image
            ),
        ));
    }
    // Bad input is refused before anything is loaded.
    if let Some(text) = &q.manifest_text {
        let manifest = berth_core::parse_manifest("berth.yml", text).map_err(RackError::from)?;
        uses_upload(&manifest)?;
    }
    let tar = spool(&rack, body).await?;
    Ok(stream_work(
        rack,
        app.clone(),
        move |rack, progress| async move {
            let release = release_image(&rack, &app, &q, tar, &progress).await?;
            promote_release(&rack, &app, &release.id, &progress).await
        },
    ))
}

/// `POST /apps/{app}/image/layers` (body: chain ids): those whose layer the
/// engine already has, so the CLI can leave their data out of the upload
/// (`docker load` reads a layer's data only when the engine lacks its chain id).
pub async fn present_layers(
    State(rack): State<Arc<Rack>>,
    Path(app): Path<String>,
    Json(chains): Json<Vec<String>>,
) -> ApiResult<Json<Vec<String>>> {
    check_app(&rack, &app)?;
    if chains.len() > 10_000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "more than 10000 layers asked about; an image has at most a few hundred",
        ));
    }
    let have = rack.runtime.layer_chains().await.map_err(RackError::from)?;
    Ok(Json(
        chains.into_iter().filter(|c| have.contains(c)).collect(),
    ))
}

/// The services that run the uploaded image (those with `build:`).
fn uses_upload(manifest: &berth_core::Manifest) -> Result<Vec<String>, RackError> {
    let services: Vec<String> = manifest
        .services
        .iter()
        .filter(|(_, s)| matches!(s.source, ImageSource::Build(_)))
        .map(|(n, _)| n.clone())
        .collect();
    if services.is_empty() {
        return Err(RackError::BadRequest(
            "no service in berth.yml has `build:`, so none would run the uploaded image; give the service that should run it `build: .`".into(),
        ));
    }
    Ok(services)
}

async fn release_image(
    rack: &Arc<Rack>,
    app: &str,
    q: &ImageQuery,
    tar: tempfile::TempPath,
    progress: &Progress,
) -> Result<ReleaseRow, RackError> {
    // On a server sharing the user's engine the image is already there; it must
    // then survive this deploy.
    let existed = rack.runtime.image_exists(&q.image).await?;
    step(progress, format!("loading image {}", q.image)).await;
    let file = tokio::fs::File::open(&tar).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed();
    let loaded = rack.runtime.load_image(stream).await?;
    drop(tar);
    let wanted = if q.image.contains(':') || q.image.contains('@') {
        q.image.clone()
    } else {
        format!("{}:latest", q.image)
    };
    let reference = loaded
        .iter()
        .find(|r| **r == wanted || **r == q.image)
        .or_else(|| loaded.first())
        .cloned()
        .ok_or_else(|| RackError::BadRequest("the upload held no image".into()))?;
    let details = rack
        .runtime
        .image_details(&reference)
        .await?
        .ok_or_else(|| {
            RackError::BadRequest(format!("image {reference} vanished right after loading it"))
        })?;
    step(
        progress,
        format!("loaded {reference} ({} MiB)", details.size >> 20),
    )
    .await;
    let text = match &q.manifest_text {
        Some(t) => t.clone(),
        None => default_manifest(details.exposed_tcp.first().copied()),
    };
    let manifest = berth_core::parse_manifest("berth.yml", &text)?;
    let services = uses_upload(&manifest)?;
    let env = rack.store.env(app, rack.store.app(app)?.env_version)?;
    let missing = manifest.missing_env(&env);
    if !missing.is_empty() {
        return Err(RackError::BadRequest(format!(
            "app {app} needs environment {} which is not set; set it with `berth env set {}=... -a {app}` and deploy again",
            missing.join(", "),
            missing[0]
        )));
    }
    let build = rack.store.create_build(app, &text)?;
    step(
        progress,
        format!("build {} from image {reference}", build.id),
    )
    .await;
    let tag = format!("berth/{app}:{}", build.id);
    let result = label_image(rack, app, &build.id, &reference, &tag, progress).await;
    if !existed && !reference.starts_with("sha256:") {
        // Only berth's tag should hold the image on the server.
        let _ = rack.runtime.remove_image(&reference).await;
    }
    if let Err(e) = result {
        rack.store
            .finish_build(app, &build.id, &BTreeMap::new(), Some(&e.to_string()))?;
        return Err(e);
    }
    let images: BTreeMap<String, String> = services.into_iter().map(|s| (s, tag.clone())).collect();
    rack.store.finish_build(app, &build.id, &images, None)?;
    rack.logs.event(
        app,
        &format!("build {} made from uploaded image {reference}", build.id),
    );
    let release = rack.store.create_release(
        app,
        Some(&build.id),
        rack.store.app(app)?.env_version,
        &text,
        &format!("image {}", q.image),
    )?;
    step(progress, format!("release {} created", release.id)).await;
    Ok(release)
}

/// Gives the loaded image berth's labels and tag through a one-line build
/// (`FROM` it): images carry their labels in their config, so this is how
/// deletion and pruning find it like any image berth built.
async fn label_image(
    rack: &Rack,
    app: &str,
    build: &str,
    reference: &str,
    tag: &str,
    progress: &Progress,
) -> Result<(), RackError> {
    let dir = tempfile::tempdir_in(rack.data_dir.join("tmp"))?;
    let context = dir.path().join("context.tar");
    let dockerfile = format!("FROM {reference}\n");
    let ctx = context.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut builder = tar::Builder::new(std::fs::File::create(&ctx)?);
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        builder.into_inner()?.sync_all()
    })
    .await
    .map_err(|e| RackError::BadRequest(e.to_string()))??;
    let mut labels = rack.labels(app);
    labels.insert(LABEL_BUILD.into(), build.to_string());
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let forward = async {
        while let Some(line) = rx.recv().await {
            let line = line.trim_end().to_string();
            if !line.is_empty() {
                rack.logs.append_at(
                    app,
                    crate::logs::now_nanos(),
                    &format!("build/{build}"),
                    &line,
                );
                let _ = progress.send(Event::Build { text: line }).await;
            }
        }
    };
    let request = BuildRequest {
        context_tar: &context,
        dockerfile: "Dockerfile".into(),
        tag: tag.to_string(),
        args: BTreeMap::new(),
        labels,
    };
    let (result, ()) = tokio::join!(rack.runtime.build_image(request, tx), forward);
    result?;
    Ok(())
}

/// `POST /rack/prune`
pub async fn prune(State(rack): State<Arc<Rack>>) -> ApiResult<Json<PruneReport>> {
    Ok(Json(prune_rack(&rack).await?))
}

/// Builds kept for `app`: those of its last `KEEP_RELEASES` releases, the
/// promoted one, any a process runs, and the two newest (a `berth build` not
/// released yet).
fn kept_builds(rack: &Rack, app: &str) -> Result<BTreeSet<String>, RackError> {
    let releases = rack.store.releases(app)?;
    let current = rack.store.app(app)?.release;
    let processes = rack.store.processes(Some(app))?;
    let mut keep: BTreeSet<String> = releases
        .iter()
        .take(KEEP_RELEASES)
        .chain(releases.iter().filter(|r| {
            Some(&r.id) == current.as_ref() || processes.iter().any(|p| p.release == r.id)
        }))
        .filter_map(|r| r.build.clone())
        .collect();
    keep.extend(rack.store.builds(app)?.iter().take(2).map(|b| b.id.clone()));
    Ok(keep)
}

pub async fn prune_rack(rack: &Rack) -> Result<PruneReport, RackError> {
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
        kept.insert(app.clone(), kept_builds(rack, app)?);
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
            let prefix = format!("berth/{app}:");
            builds.extend(image.tags.iter().filter_map(|t| {
                t.strip_prefix(&prefix)
                    .map(|b| b.split('-').next().unwrap_or(b).to_string())
            }));
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

/// `GET /apps/{app}/releases/{id}/info`
pub async fn release_info(
    State(rack): State<Arc<Rack>>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<ReleaseInfo>> {
    check_app(&rack, &app)?;
    let release = rack.store.release(&app, &id)?;
    let previous = rack
        .store
        .releases(&app)?
        .into_iter()
        .filter(|r| r.seq < release.seq)
        .max_by_key(|r| r.seq);
    let env = rack.store.env(&app, release.env_version)?;
    let before = match &previous {
        Some(p) => rack.store.env(&app, p.env_version)?,
        None => BTreeMap::new(),
    };
    let env_added = env
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let env_removed = before
        .keys()
        .filter(|k| !env.contains_key(*k))
        .cloned()
        .collect();
    let env_changed = env
        .iter()
        .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let manifest_diff = match &previous {
        Some(p) if p.manifest != release.manifest => line_diff(&p.manifest, &release.manifest),
        Some(_) => vec![],
        None => line_diff("", &release.manifest),
    };
    Ok(Json(ReleaseInfo {
        release: release_json(&release),
        previous: previous.map(|p| p.id),
        env_added,
        env_removed,
        env_changed,
        manifest_diff,
    }))
}

/// Longest-common-subsequence line diff: `  ` kept, `- ` removed, `+ ` added.
/// Manifests are small (at most 1 MiB, typically a few dozen lines); beyond
/// 4000 lines a side the whole old and new text are shown instead.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > 4000 || b.len() > 4000 {
        return a
            .iter()
            .map(|l| format!("- {l}"))
            .chain(b.iter().map(|l| format!("+ {l}")))
            .collect();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diff(1) shows a changed line.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, ["  a", "- b", "+ B", "  c", "+ d"]);
        assert_eq!(line_diff("x", "x"), ["  x"]);
        assert_eq!(line_diff("", "y"), ["+ y"]);
    }

    #[test]
    fn default_manifest_parses() {
        let m = berth_core::parse_manifest("berth.yml", &default_manifest(Some(8080))).unwrap();
        assert_eq!(m.services["web"].port, Some(8080));
        let m = berth_core::parse_manifest("berth.yml", &default_manifest(None)).unwrap();
        assert_eq!(m.services["web"].port, None);
        assert!(uses_upload(&m).is_ok());
    }
}
