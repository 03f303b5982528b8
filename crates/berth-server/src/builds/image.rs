//! Releasing an image built on the user's machine (`deploy --image`): the
//! upload is a `docker save` tar, loaded into the engine and given berth's
//! labels and tag; only the layers the engine lacks need to travel.

use super::build::forward_output;
use crate::error::{Error, Result};
use crate::progress::{Progress, step};
use crate::rack::Rack;
use crate::rack::metrics::Outcome;
use berth_core::ImageSource;
use berth_runtime::{BuildRequest, LABEL_BUILD};
use berth_store::ReleaseRow;
use futures_util::StreamExt;
use std::collections::BTreeMap;

/// An uploaded image and how to release it.
#[derive(Debug, Clone)]
pub struct ImageUpload {
    /// The image's name on the client's engine (`docker save NAME`).
    pub image: String,
    /// The manifest to release it with; absent: one `web` service on the
    /// image's first exposed TCP port.
    pub manifest_text: Option<String>,
}

impl ImageUpload {
    /// Refuses a bad name or manifest before anything is uploaded or loaded.
    pub fn check(&self) -> Result<()> {
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return Err(Error::Invalid(format!(
                "{:?} is not an image name; give one like `shop:latest`",
                self.image
            )));
        }
        if let Some(text) = &self.manifest_text {
            uses_upload(&berth_core::parse_manifest("berth.yml", text)?)?;
        }
        Ok(())
    }
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

/// Of `chains` (layer chain ids), those whose layer the engine already has, so
/// the CLI can leave their data out of the upload (`docker load` reads a
/// layer's data only when the engine lacks its chain id).
pub async fn present_layers(rack: &Rack, chains: Vec<String>) -> Result<Vec<String>> {
    if chains.len() > 10_000 {
        return Err(Error::Invalid(
            "more than 10000 layers asked about; an image has at most a few hundred".into(),
        ));
    }
    let have = rack.runtime.layer_chains().await?;
    Ok(chains.into_iter().filter(|c| have.contains(c)).collect())
}

/// The services that run the uploaded image (those with `build:`).
fn uses_upload(manifest: &berth_core::Manifest) -> Result<Vec<String>> {
    let services: Vec<String> = manifest
        .services
        .iter()
        .filter(|(_, s)| matches!(s.source, ImageSource::Build(_)))
        .map(|(n, _)| n.clone())
        .collect();
    if services.is_empty() {
        return Err(Error::Invalid(
            "no service in berth.yml has `build:`, so none would run the uploaded image; give the service that should run it `build: .`".into(),
        ));
    }
    Ok(services)
}

/// Loads a spooled `docker save` tar and releases it (not promoted).
pub async fn release_image(
    rack: &Rack,
    app: &str,
    q: &ImageUpload,
    tar: tempfile::TempPath,
    progress: &Progress,
) -> Result<ReleaseRow> {
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
        .ok_or_else(|| Error::Invalid("the upload held no image".into()))?;
    let details = rack
        .runtime
        .image_details(&reference)
        .await?
        .ok_or_else(|| {
            Error::Invalid(format!("image {reference} vanished right after loading it"))
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
    super::build::require_env(&manifest, &env, app, &format!("app {app}"))?;
    let build = rack.store.create_build(app, &text)?;
    step(
        progress,
        format!("build {} from image {reference}", build.id),
    )
    .await;
    let tag = format!("berth/{app}:{}", build.id);
    let started = std::time::Instant::now();
    let result = label_image(rack, app, &build.id, &reference, &tag, progress).await;
    rack.metrics.build(Outcome::of(&result), started.elapsed());
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
) -> Result<()> {
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
    .map_err(|e| Error::Internal(e.to_string()))??;
    let mut labels = rack.labels(app);
    labels.insert(LABEL_BUILD.into(), build.to_string());
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    let request = BuildRequest {
        context_tar: &context,
        dockerfile: "Dockerfile".into(),
        tag: tag.to_string(),
        args: BTreeMap::new(),
        labels,
    };
    let (result, ()) = tokio::join!(
        rack.runtime.build_image(request, tx),
        forward_output(rack, app, build, progress, rx)
    );
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_manifest_parses() {
        let m = berth_core::parse_manifest("berth.yml", &default_manifest(Some(8080))).unwrap();
        assert_eq!(m.services["web"].port, Some(8080));
        let m = berth_core::parse_manifest("berth.yml", &default_manifest(None)).unwrap();
        assert_eq!(m.services["web"].port, None);
        assert!(uses_upload(&m).is_ok());
    }
}
