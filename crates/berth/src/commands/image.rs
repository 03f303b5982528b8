//! `berth deploy --image IMAGE`: an image from the local engine, released without a
//! registry. The thinning (which layers travel) is `berth_client::Client::thin_image`.

use crate::cli::SourceArgs;
use crate::output::bytes;
use crate::progress;
use crate::resolve;
use anyhow::{Context, Result, anyhow};
use berth_client::{Client, Thinning};
use berth_runtime::Runtime;
use futures_util::StreamExt;
use std::path::Path;
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;

/// `berth deploy --image IMAGE`: `docker save` from the local engine, upload,
/// and the server loads, releases and rolls it out.
pub async fn deploy(args: SourceArgs) -> Result<()> {
    let image = args.image.clone().unwrap_or_default();
    let (app, manifest_text) = app_and_manifest(&args)?;
    let client = Client::from_config()?;
    client.app(&app).await?;
    let saved = save(&image).await?;
    let thin = thin(&client, &app, saved.path()).await?;
    let upload_path = thin.as_deref().unwrap_or(saved.path());
    let size = std::fs::metadata(upload_path).map(|m| m.len()).unwrap_or(0);
    let (client, app, image, manifest) = (&client, &app, &image, manifest_text.as_deref());
    let events = progress::upload(size, |progress| async move {
        client
            .deploy_image(app, image, manifest, upload_path, progress)
            .await
    })
    .await?;
    progress::finish(events).await
}

/// The app, and the text of DIR's manifest if there is one (the image needs none).
fn app_and_manifest(args: &SourceArgs) -> Result<(String, Option<String>)> {
    let dir = &args.dir;
    let located = resolve::locate_manifest(dir, &args.manifest)?;
    let shown = located.shown;
    let (manifest_text, manifest) = match std::fs::read_to_string(&located.path) {
        Ok(text) => {
            let m = berth_core::parse_manifest(&shown.to_string_lossy(), &text)?;
            (Some(text), Some(m))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", shown.display())),
    };
    let dir_abs = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?;
    let app = resolve::pick_app(
        args.app.app.as_deref(),
        manifest
            .as_ref()
            .map(|m| (shown.as_path(), m.app.as_deref())),
        &dir_abs,
    )?;
    Ok((app, manifest_text))
}

/// `docker save` of `image` from the local engine, into a temporary file.
async fn save(image: &str) -> Result<NamedTempFile> {
    let engine = berth_runtime::DockerRuntime::connect().await?;
    let details = engine.image_details(image).await?.ok_or_else(|| {
        anyhow!(
            "image {image} is not on the local Docker engine; build it first (`docker build -t {image} .`) or check `docker images`"
        )
    })?;
    let tar = tempfile::Builder::new()
        .prefix("berth-image-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the image")?;
    eprintln!(
        "==> saving image {image} ({}) from the local engine",
        bytes(details.size)
    );
    let mut out = tokio::fs::File::create(tar.path())
        .await
        .context("cannot write the temporary image file")?;
    let mut stream = engine.export_image(image);
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(tar)
}

/// The saved image without the layers the server has, or `None` when all travel;
/// on any doubt, all do.
async fn thin(client: &Client, app: &str, saved: &Path) -> Result<Option<TempPath>> {
    let thin = tempfile::Builder::new()
        .prefix("berth-image-thin-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the image")?
        .into_temp_path();
    match client.thin_image(app, saved, &thin).await {
        Ok(Thinning::Asked { layers, present }) => {
            eprintln!("==> {present} of {layers} layers already on the server");
            Ok((present > 0).then_some(thin))
        }
        Ok(Thinning::Whole) => Ok(None),
        Err(e) => {
            eprintln!(
                "==> note: cannot tell which layers the server has ({e}); uploading them all"
            );
            Ok(None)
        }
    }
}
