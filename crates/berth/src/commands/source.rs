//! `berth build` and `berth deploy` from a source directory: pack it (minding
//! .dockerignore), upload it, follow the build and rollout.

use crate::cli::SourceArgs;
use crate::output::bytes;
use crate::progress;
use crate::resolve;
use anyhow::{Context, Result, anyhow, bail};
use berth_client::Client;
use berth_client::source::ExtraFile;
use std::path::Path;

/// `berth build DIR`: a new release, not rolled out.
pub async fn build(args: SourceArgs) -> Result<()> {
    if args.image.is_some() {
        bail!(
            "`berth build` builds from source; release a local image with `berth deploy --image IMAGE`"
        );
    }
    upload(args, false).await
}

/// `berth deploy DIR`.
pub async fn deploy(args: SourceArgs) -> Result<()> {
    upload(args, true).await
}

/// Checks the manifest, packs, uploads, follows the work.
async fn upload(args: SourceArgs, deploy: bool) -> Result<()> {
    let events = send(args, deploy, None).await?;
    progress::finish(events).await
}

/// Checks the manifest, packs and uploads to `client` (else the configured server),
/// returning the stream of the server's work: what `berth deploy` does before it
/// follows the work, and what `berth start` does on each rebuild.
pub async fn send(
    args: SourceArgs,
    deploy: bool,
    client: Option<&Client>,
) -> Result<berth_client::EventStream> {
    let dir = args.dir;
    let located = resolve::locate_manifest(&dir, &args.manifest)?;
    let shown = located.shown.clone();
    let manifest = resolve::read_manifest_if_present(&located.path, &shown)?.ok_or_else(|| {
        anyhow!(
            "{} does not exist; write a berth.yml in the source directory or name the manifest with -f FILE",
            shown.display()
        )
    })?;
    let builds = manifest
        .services
        .values()
        .any(|s| matches!(s.source, berth_core::ImageSource::Build(_)));
    if builds && !dir.is_dir() {
        bail!(
            "the source directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    // The app's name may come from the source directory's; a manifest that
    // builds nothing may have no source directory at all.
    let dir_abs = std::fs::canonicalize(&dir)
        .or_else(|_| std::env::current_dir())
        .with_context(|| format!("cannot read the source directory {}", dir.display()))?;
    let app = resolve::pick_app(
        args.app.app.as_deref(),
        Some((&shown, manifest.app.as_deref())),
        &dir_abs,
    )?;

    if let (Some(flag), Some(named)) = (args.app.app.as_deref(), manifest.app.as_deref())
        && flag != named
    {
        eprintln!(
            "warning: {} names app {named}, but --app says {flag}; deploying to {flag}",
            shown.display()
        );
    }
    // What the server would refuse after the whole upload is refused here first,
    // with the server's words.
    check_build_files(&dir, &manifest)?;

    let configured;
    let client = match client {
        Some(client) => client,
        None => {
            configured = Client::from_config()?;
            &configured
        }
    };
    // Fails early, before packing, when the app is missing or the token is wrong.
    if let Err(e) = client.app(&app).await {
        if e.status() == Some(404)
            && let Some(named) = manifest.app.as_deref().filter(|n| *n != app)
        {
            bail!("{e} ({} names app {named})", shown.display());
        }
        return Err(e.into());
    }
    check_required_env(client, &app, &manifest).await?;

    // The manifest's path in the upload: where it is in the source, else a
    // name of its own (it is sent along: it lives elsewhere, or nothing else
    // needs sending because nothing is built).
    let file_name = located
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "berth.yml".into());
    let (manifest_rel, extra) = match (&located.in_source, builds) {
        (Some(rel), true) => (rel.clone(), false),
        (None, true) => (format!(".berth/{file_name}"), true),
        (_, false) => (file_name, true),
    };
    let extra_bytes = if extra {
        std::fs::read(&located.path).with_context(|| format!("cannot read {}", shown.display()))?
    } else {
        Vec::new()
    };

    let tar = tempfile::Builder::new()
        .prefix("berth-source-")
        .suffix(".tar")
        .tempfile()
        .context("cannot create a temporary file for the source archive")?;
    // The manifest and the Dockerfiles it names go up even if .dockerignore lists them.
    let keep = files_to_keep(&manifest_rel, &manifest);
    let (files, size) = {
        let src = dir.clone();
        let mut out = tar
            .reopen()
            .context("cannot open the temporary source archive")?;
        let rel = manifest_rel.clone();
        tokio::task::spawn_blocking(move || {
            let extra: Vec<ExtraFile> = if extra {
                vec![ExtraFile {
                    path: &rel,
                    bytes: &extra_bytes,
                }]
            } else {
                Vec::new()
            };
            if builds {
                let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                berth_client::source::pack_source_keeping(&src, &keep, &extra, &mut out)
            } else {
                berth_client::source::pack_files(&extra, &mut out)
            }
        })
        .await
        .context("packing the source panicked")??
    };
    if builds {
        eprintln!(
            "==> packed {files} files ({}) from {} for app {app}",
            bytes(size),
            dir.display()
        );
    } else {
        eprintln!(
            "==> {} builds nothing: sending it alone for app {app}",
            shown.display()
        );
    }

    let size_on_disk = tar.as_file().metadata().map(|m| m.len()).unwrap_or(size);
    let (app, path, manifest) = (&app, tar.path(), &manifest_rel);
    progress::upload(size_on_disk, |progress| async move {
        if deploy {
            client.deploy(app, path, manifest, progress).await
        } else {
            client.build(app, path, manifest, progress).await
        }
    })
    .await
}

/// Fails as the server would when a service's build context or Dockerfile is
/// not in the source directory.
fn check_build_files(dir: &Path, manifest: &berth_core::Manifest) -> Result<()> {
    for (name, service) in &manifest.services {
        if let berth_core::ImageSource::Build(spec) = &service.source {
            if !dir.join(&spec.path).is_dir() {
                bail!("{}", spec.missing_context(name));
            }
            if !dir.join(spec.dockerfile_in_source()).is_file() {
                bail!("{}", spec.missing_dockerfile());
            }
        }
    }
    Ok(())
}

/// Fails as the server would when the manifest requires variables the app has
/// not set. A token that may not read the values leaves this to the server.
async fn check_required_env(
    client: &Client,
    app: &str,
    manifest: &berth_core::Manifest,
) -> Result<()> {
    let env = match client.env(app).await {
        Ok(env) => env,
        Err(e) if e.status() == Some(403) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let missing = manifest.missing_env(&env);
    if !missing.is_empty() {
        bail!(
            "{}",
            berth_core::env::unset_required_message(&format!("app {app}"), app, &missing)
        );
    }
    Ok(())
}

/// Paths (relative to the source root, `/`-separated) the server needs from the upload:
/// the manifest and each Dockerfile it builds with.
fn files_to_keep(manifest_rel: &str, manifest: &berth_core::Manifest) -> Vec<String> {
    let mut keep = vec![manifest_rel.to_string()];
    for service in manifest.services.values() {
        if let berth_core::ImageSource::Build(spec) = &service.source {
            keep.push(spec.dockerfile_in_source());
        }
    }
    keep.sort();
    keep.dedup();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_manifest_and_dockerfiles() -> Result<(), berth_core::ManifestError> {
        let yaml = "services:\n  web:\n    build: .\n    port: 8080\n  api:\n    build: {path: api, dockerfile: docker/Dockerfile.api}\n  db:\n    image: postgres\n";
        let m = berth_core::parse_manifest("pod.yml", yaml)?;
        assert_eq!(
            files_to_keep("k8s/pod.yml", &m),
            ["Dockerfile", "api/docker/Dockerfile.api", "k8s/pod.yml"]
        );
        Ok(())
    }
}
