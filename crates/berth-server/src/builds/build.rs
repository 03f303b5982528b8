//! Building images from an extracted source: one engine build per distinct
//! build spec, a release on success; and which build images are kept.

use super::extract::{Source, pack_context, safe_relative};
use crate::error::{Error, Result};
use crate::progress::{Progress, step};
use crate::rack::Rack;
use crate::rack::metrics::Outcome;
use berth_api::Event;
use berth_core::ImageSource;
use berth_runtime::{BuildRequest, LABEL_APP};
use berth_store::{BuildRow, ReleaseRow};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tokio::sync::mpsc;

/// Releases whose images are kept so that a rollback needs no rebuild.
pub const KEEP_RELEASES: usize = 10;

/// Builds every service image of `source` and creates a release with the
/// app's current environment.
pub async fn build(
    rack: &Rack,
    app: &str,
    source: &Source,
    progress: &Progress,
) -> Result<(BuildRow, ReleaseRow)> {
    let build = rack.store.create_build(app, &source.manifest_text)?;
    step(progress, format!("build {} started", build.id)).await;
    rack.logs.event(app, &format!("build {} started", build.id));
    let started = std::time::Instant::now();
    let result = build_images(rack, app, &build, source, progress).await;
    rack.metrics.build(Outcome::of(&result), started.elapsed());
    match result {
        Ok(images) => {
            rack.store.finish_build(app, &build.id, &images, None)?;
            rack.logs
                .event(app, &format!("build {} succeeded", build.id));
            let env_version = rack.store.app(app)?.env_version;
            let release = rack.store.create_release(
                app,
                Some(&build.id),
                env_version,
                &source.manifest_text,
                &format!("build {}", build.id),
            )?;
            step(progress, format!("release {} created", release.id)).await;
            let build = rack.store.build(app, &build.id)?;
            Ok((build, release))
        }
        Err(e) => {
            rack.store
                .finish_build(app, &build.id, &BTreeMap::new(), Some(&e.to_string()))?;
            rack.logs
                .event(app, &format!("build {} failed: {e}", build.id));
            Err(e)
        }
    }
}

async fn build_images(
    rack: &Rack,
    app: &str,
    build: &BuildRow,
    source: &Source,
    progress: &Progress,
) -> Result<BTreeMap<String, String>> {
    // Services sharing one build spec share one image.
    let mut specs: Vec<(berth_core::BuildSpec, Vec<String>)> = Vec::new();
    let mut images = BTreeMap::new();
    for (name, svc) in &source.manifest.services {
        match &svc.source {
            ImageSource::Image(image) => {
                images.insert(name.clone(), image.clone());
            }
            ImageSource::Build(spec) => match specs.iter_mut().find(|(s, _)| s == spec) {
                Some((_, names)) => names.push(name.clone()),
                None => specs.push((spec.clone(), vec![name.clone()])),
            },
        }
    }
    let single = specs.len() == 1;
    for (spec, services) in specs {
        let tag = if single {
            format!("berth/{app}:{}", build.id)
        } else {
            format!("berth/{app}:{}-{}", build.id, services[0])
        };
        let context_dir = source
            .dir
            .path()
            .join(safe_relative(Path::new(&spec.path)).map_err(Error::Invalid)?);
        if !context_dir.is_dir() {
            return Err(Error::Invalid(spec.missing_context(&services[0])));
        }
        if !context_dir.join(&spec.dockerfile).is_file() {
            return Err(Error::Invalid(spec.missing_dockerfile()));
        }
        let context_tar = source
            .dir
            .path()
            .with_extension(format!("ctx-{}.tar", services[0]));
        let dir = context_dir.clone();
        let out = context_tar.clone();
        let packed = tokio::task::spawn_blocking(move || pack_context(&dir, &out))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if let Err(e) = packed {
            let _ = std::fs::remove_file(&context_tar);
            let what = format!("write the build context of service {}", services[0]);
            return Err(
                match crate::disk::full_message(&what, "tmp", &rack.data_dir.join("tmp"), &e) {
                    Some(message) => Error::DiskFull(message),
                    None => Error::Io(e),
                },
            );
        }
        // Only labels that stay the same from build to build: each label is a
        // build step, and one that changes every build (the build id) would miss
        // the cache and cost an intermediate container. The build is in the tag.
        let labels = rack.labels(app);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let (tx, rx) = mpsc::channel::<String>(256);
            let request = BuildRequest {
                context_tar: &context_tar,
                dockerfile: spec.dockerfile.clone(),
                tag: tag.clone(),
                args: spec.args.clone(),
                labels: labels.clone(),
            };
            let (result, ()) = tokio::join!(
                rack.runtime.build_image(request, tx),
                forward_output(rack, app, &build.id, progress, rx)
            );
            match result {
                Err(e) if attempt == 1 && lost_cached_layer(&e) => {
                    step(
                        progress,
                        "a cached layer went away mid-build (another app's images were deleted); building again",
                    )
                    .await;
                }
                other => break other,
            }
        };
        let _ = std::fs::remove_file(&context_tar);
        result?;
        for name in services {
            images.insert(name, tag.clone());
        }
    }
    Ok(images)
}

/// Builds of different apps share cached layers (the same Dockerfile steps);
/// deleting one app's images prunes untagged parents that a concurrent build
/// just reused, and the engine then fails that build with a missing digest or
/// image. Building again makes the layers anew.
fn lost_cached_layer(error: &berth_runtime::RuntimeError) -> bool {
    let message = error.to_string();
    message.contains("failed to get digest") || message.contains("No such image")
}

/// Fails when `manifest` requires environment keys `env` lacks, naming them and
/// the `berth env set` that adds them. `what` is what needs them (`app shop`).
pub fn require_env(
    manifest: &berth_core::Manifest,
    env: &BTreeMap<String, String>,
    app: &str,
    what: &str,
) -> Result<()> {
    let missing = manifest.missing_env(env);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(berth_core::env::unset_required_message(
        what, app, &missing,
    )))
}

/// Builds an extracted upload into a new release (not promoted), once the app's
/// environment has what its manifest requires.
pub async fn build_upload(
    rack: &Rack,
    app: &str,
    source: &Source,
    progress: &Progress,
) -> Result<(BuildRow, ReleaseRow)> {
    if let Some(name) = &source.manifest.app
        && name != app
    {
        step(
            progress,
            format!("note: berth.yml names app {name}, deploying to {app} as asked"),
        )
        .await;
    }
    let env = rack.store.env(app, rack.store.app(app)?.env_version)?;
    require_env(&source.manifest, &env, app, &format!("app {app}"))?;
    build(rack, app, source, progress).await
}

/// Builds kept for `app`: those of its last `KEEP_RELEASES` releases, the
/// promoted one, any a process runs, and the two newest (a `berth build` not
/// released yet).
pub fn kept_builds(rack: &Rack, app: &str) -> Result<BTreeSet<String>> {
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

/// The builds a `berth/<app>:<build>` tag (or `<build>-<service>`) names.
pub fn build_of_tag<'t>(app: &str, tag: &'t str) -> Option<&'t str> {
    let build = tag
        .strip_prefix("berth/")?
        .strip_prefix(app)?
        .strip_prefix(':')?;
    Some(build.split('-').next().unwrap_or(build))
}

/// Removes this app's build images that no kept build ([`kept_builds`]) uses.
pub async fn prune_images(rack: &Rack, app: &str) -> Result<()> {
    let keep = kept_builds(rack, app)?;
    for image in rack.runtime.list_images(LABEL_APP, app).await? {
        if !rack.owns(&image.labels) {
            continue;
        }
        // Identical builds share one image under several tags: untagging the
        // unwanted ones removes the image only when no kept tag remains.
        for tag in &image.tags {
            if build_of_tag(app, tag).is_some_and(|b| !keep.contains(b)) {
                rack.runtime.remove_image(tag).await?;
            }
        }
        if image.tags.is_empty() {
            rack.runtime.remove_image(&image.id).await?;
        }
    }
    Ok(())
}

/// Passes a build's output lines on to the app log (`build/<id>`) and to
/// whoever follows the work, until the build closes `lines`.
pub async fn forward_output(
    rack: &Rack,
    app: &str,
    build: &str,
    progress: &Progress,
    mut lines: mpsc::Receiver<String>,
) {
    let source = format!("build/{build}");
    while let Some(line) = lines.recv().await {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        rack.logs
            .append_at(app, crate::logs::now_nanos(), &source, line);
        let _ = progress
            .send(Event::Build {
                text: line.to_string(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_deleted_under_a_build_is_told_from_a_failing_build() {
        use berth_runtime::RuntimeError;
        let lost = RuntimeError::Build(
            "failed to get digest sha256:53ee: open /var/lib/docker/image/overlay2/imagedb/content/sha256/53ee: no such file or directory".into(),
        );
        assert!(lost_cached_layer(&lost));
        let failing =
            RuntimeError::Build("The command '/bin/sh -c make' returned a non-zero code: 2".into());
        assert!(!lost_cached_layer(&failing));
    }
}
