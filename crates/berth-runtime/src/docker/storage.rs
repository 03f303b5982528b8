//! Engine operations behind volumes, archives and image transfer: the Docker
//! side of the `Runtime` methods `ensure_volume` and after.

use super::convert::{label_filter, map_err, status_of, to_hash_map};
use crate::{ImageDetails, Result, RuntimeError, VolumeInfo};
use berth_core::layers::chain_ids;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ImportImageOptions, ListVolumesOptions,
    RemoveVolumeOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::collections::BTreeMap;
use std::time::Duration;

/// Loading a large image takes as long as its upload; bollard's default
/// timeout (2 minutes) would cut it.
const LOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Chain ids of every layer of every image on the engine.
pub(crate) async fn layer_chains(docker: &Docker) -> Result<std::collections::BTreeSet<String>> {
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .map_err(map_err)?;
    let mut out = std::collections::BTreeSet::new();
    for image in images {
        if let Some(details) = image_details(docker, &image.id).await? {
            out.extend(chain_ids(&details.diff_ids));
        }
    }
    Ok(out)
}

pub(crate) async fn ensure_volume(
    docker: &Docker,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    // Creating an existing local volume is a no-op on the engine (it answers
    // with the existing one), so there is no check-then-create race.
    let request = VolumeCreateRequest {
        name: Some(name.to_string()),
        driver: Some("local".into()),
        labels: Some(to_hash_map(labels)),
        ..Default::default()
    };
    docker.create_volume(request).await.map_err(map_err)?;
    Ok(())
}

pub(crate) async fn list_volumes(
    docker: &Docker,
    key: &str,
    value: &str,
) -> Result<Vec<VolumeInfo>> {
    let options = ListVolumesOptions {
        filters: Some(label_filter(key, value)),
    };
    let list = docker.list_volumes(Some(options)).await.map_err(map_err)?;
    let mut out: Vec<VolumeInfo> = list
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| VolumeInfo {
            name: v.name,
            labels: v.labels.into_iter().collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) async fn remove_volume(docker: &Docker, name: &str) -> Result<()> {
    match docker
        .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        }) => Err(RuntimeError::Engine(format!(
            "volume {name} is in use ({message}); stop what uses it first"
        ))),
        Err(e) => Err(map_err(e)),
    }
}

pub(crate) async fn create_helper(
    docker: &Docker,
    name: &str,
    image: &str,
    labels: &BTreeMap<String, String>,
    volumes: &[(String, String)],
) -> Result<String> {
    let _ = docker
        .remove_container(
            name,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                v: false,
                link: false,
            }),
        )
        .await;
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // Never started: the command only has to be present for the engine to
        // accept an image without one.
        cmd: Some(vec!["berth-helper".into()]),
        entrypoint: Some(vec![]),
        labels: Some(to_hash_map(labels)),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(volumes.iter().map(|(v, p)| format!("{v}:{p}")).collect()),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        platform: String::new(),
    };
    match docker.create_container(Some(options), body).await {
        Ok(created) => Ok(created.id),
        Err(BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        }) if message.starts_with("No such image") => {
            Err(RuntimeError::ImageMissing(image.to_string()))
        }
        Err(e) => Err(map_err(e)),
    }
}

pub(crate) fn download_archive(
    docker: &Docker,
    container: &str,
    path: &str,
) -> BoxStream<'static, Result<Bytes>> {
    let options = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    docker
        .clone()
        .with_timeout(LOAD_TIMEOUT)
        .download_from_container(container, Some(options))
        .map(|r| r.map_err(map_err))
        .boxed()
}

pub(crate) async fn upload_archive(
    docker: &Docker,
    container: &str,
    path: &str,
    tar: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<()> {
    let options = UploadToContainerOptions {
        path: path.to_string(),
        ..Default::default()
    };
    docker
        .clone()
        .with_timeout(LOAD_TIMEOUT)
        .upload_to_container(container, Some(options), bollard::body_try_stream(tar))
        .await
        .map_err(|e| match e {
            BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            } => RuntimeError::Engine(format!(
                "the engine refused the archive ({message}); send a tar file (as `berth volumes backup` writes)"
            )),
            e => map_err(e),
        })
}

pub(crate) fn export_image(docker: &Docker, name: &str) -> BoxStream<'static, Result<Bytes>> {
    docker
        .clone()
        .with_timeout(LOAD_TIMEOUT)
        .export_image(name)
        .map(|r| r.map_err(map_err))
        .boxed()
}

pub(crate) async fn load_image(
    docker: &Docker,
    tar: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<Vec<String>> {
    let options = ImportImageOptions {
        quiet: true,
        platform: None,
    };
    let client = docker.clone().with_timeout(LOAD_TIMEOUT);
    let mut stream = client.import_image_stream(options, tar, None).boxed();
    let mut loaded = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(map_err)?;
        if let Some(detail) = info.error_detail {
            return Err(RuntimeError::Engine(format!(
                "the engine could not load the image: {}",
                detail.message.unwrap_or_default()
            )));
        }
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            if let Some(r) = line
                .strip_prefix("Loaded image: ")
                .or_else(|| line.strip_prefix("Loaded image ID: "))
            {
                loaded.push(r.trim().to_string());
            }
        }
    }
    if loaded.is_empty() {
        return Err(RuntimeError::Engine(
            "the upload held no image; send the output of `docker save IMAGE`".into(),
        ));
    }
    Ok(loaded)
}

pub(crate) async fn image_details(docker: &Docker, name: &str) -> Result<Option<ImageDetails>> {
    let image = match docker.inspect_image(name).await {
        Ok(i) => i,
        Err(e) if status_of(&e) == Some(404) => return Ok(None),
        Err(e) => return Err(map_err(e)),
    };
    let config = image.config.unwrap_or_default();
    let diff_ids = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
    let mut exposed_tcp: Vec<u16> = config
        .exposed_ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| parse_tcp_port(p))
        .collect();
    exposed_tcp.sort_unstable();
    Ok(Some(ImageDetails {
        id: image.id.unwrap_or_default(),
        size: u64::try_from(image.size.unwrap_or(0)).unwrap_or(0),
        exposed_tcp,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        diff_ids,
    }))
}

/// `8080/tcp` or `8080` → 8080; UDP and SCTP ports are not HTTP.
fn parse_tcp_port(p: &str) -> Option<u16> {
    match p.split_once('/') {
        Some((n, "tcp")) => n.parse().ok(),
        Some(_) => None,
        None => p.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports() {
        assert_eq!(parse_tcp_port("8080/tcp"), Some(8080));
        assert_eq!(parse_tcp_port("80"), Some(80));
        assert_eq!(parse_tcp_port("53/udp"), None);
        assert_eq!(parse_tcp_port("x/tcp"), None);
    }
}
