//! The node's router: `berth router` in a container of berth's own image,
//! publishing the rack's HTTP(S) ports on the node (host mode: no routing
//! mesh needed), its control socket in a directory of the agent's shared
//! with the container. The server joins it to every app network and feeds
//! it through the agent's tunnel. It outlives the agent (restart policy
//! `unless-stopped`), so a node keeps serving while agent or server are
//! away.

use berth_api::RouterSettings;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

/// Labels of the router container: which rack, and a digest of how it runs
/// (a change makes a new container).
pub const LABEL_RACK: &str = "berth.rack";
pub const LABEL_ROLE: &str = "berth.role";
const LABEL_SETTINGS: &str = "berth.router-settings";
/// Where the control socket's directory is inside the container.
const CONTROL_DIR: &str = "/run/berth";

/// The router container's name on a node (one per rack).
pub fn container_name(rack_id: &str) -> String {
    format!("berth-router-{rack_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("the router's address {0:?} is not host:port")]
    Address(String),
    #[error("cannot run the node's router: {0}")]
    Engine(String),
}

fn parse(addr: &str) -> Result<SocketAddr, RouterError> {
    addr.parse()
        .map_err(|_| RouterError::Address(addr.to_string()))
}

fn settings_digest(image: &str, settings: &RouterSettings) -> String {
    let text = format!(
        "{image} {} {:?} {:?} {} {} {}",
        settings.http,
        settings.https,
        settings.threads,
        settings.max_body,
        settings.max_head,
        settings.body_timeout
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Makes sure the node's router runs from `image` as `settings` say, with
/// its control socket in `control_dir`; a container made for other settings
/// or another image is replaced.
pub async fn ensure(
    docker: &Docker,
    rack_id: &str,
    image: &str,
    settings: &RouterSettings,
    control_dir: &Path,
) -> Result<(), RouterError> {
    let name = container_name(rack_id);
    let digest = settings_digest(image, settings);
    let engine = |e: bollard::errors::Error| RouterError::Engine(e.to_string());
    if let Ok(found) = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
    {
        let labels = found.config.and_then(|c| c.labels).unwrap_or_default();
        let running = found.state.and_then(|s| s.running).unwrap_or(false);
        if labels.get(LABEL_SETTINGS) == Some(&digest) {
            if !running {
                docker.start_container(&name, None).await.map_err(engine)?;
            }
            return Ok(());
        }
        tracing::info!(%name, "the router's settings changed; replacing it");
        docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(engine)?;
    }
    std::fs::create_dir_all(control_dir)
        .map_err(|e| RouterError::Engine(format!("{}: {e}", control_dir.display())))?;
    let http = parse(&settings.http)?;
    let https = settings.https.as_deref().map(parse).transpose()?;
    let mut cmd = vec![
        "router".to_string(),
        "--http".into(),
        format!("0.0.0.0:{}", http.port()),
        "--control".into(),
        format!("{CONTROL_DIR}/router.sock"),
        "--max-body".into(),
        settings.max_body.to_string(),
        "--max-header-size".into(),
        settings.max_head.to_string(),
        "--body-timeout".into(),
        settings.body_timeout.to_string(),
    ];
    let mut ports = HashMap::new();
    let mut exposed = Vec::new();
    let publish = |addr: SocketAddr| {
        (
            format!("{}/tcp", addr.port()),
            Some(vec![PortBinding {
                host_ip: Some(addr.ip().to_string()),
                host_port: Some(addr.port().to_string()),
            }]),
        )
    };
    let (key, binding) = publish(http);
    exposed.push(key.clone());
    ports.insert(key, binding);
    if let Some(https) = https {
        cmd.extend(["--https".into(), format!("0.0.0.0:{}", https.port())]);
        let (key, binding) = publish(https);
        exposed.push(key.clone());
        ports.insert(key, binding);
    }
    if let Some(threads) = settings.threads {
        cmd.extend(["--threads".into(), threads.to_string()]);
    }
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(cmd),
        labels: Some(HashMap::from([
            (LABEL_RACK.to_string(), rack_id.to_string()),
            (LABEL_ROLE.to_string(), "router".to_string()),
            (LABEL_SETTINGS.to_string(), digest),
        ])),
        exposed_ports: Some(exposed),
        host_config: Some(HostConfig {
            port_bindings: Some(ports),
            binds: Some(vec![format!("{}:{CONTROL_DIR}", control_dir.display())]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                platform: String::new(),
            }),
            body,
        )
        .await
        .map_err(engine)?;
    docker.start_container(&name, None).await.map_err(engine)?;
    tracing::info!(%name, %image, "the node's router runs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_make_the_digest() {
        let settings = RouterSettings {
            http: "0.0.0.0:80".into(),
            https: None,
            threads: None,
            max_body: 1,
            max_head: 64 * 1024,
            body_timeout: 60,
        };
        let a = settings_digest("img:1", &settings);
        assert_eq!(a, settings_digest("img:1", &settings));
        assert_ne!(a, settings_digest("img:2", &settings));
        let other = RouterSettings {
            https: Some("0.0.0.0:443".into()),
            ..settings
        };
        assert_ne!(a, settings_digest("img:1", &other));
    }
}
