//! A health check made from a container on the engine, for an engine whose
//! networks this process cannot reach (a Swarm node's, over its socket): a
//! short-lived container of a busybox-style image joins the engine's network
//! holding the address and sends the request with `nc`.

use super::convert::{map_err, status_of};
use super::logs::log_lines;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Marks probe containers, so one a crash left behind can be found.
const LABEL_PROBE: &str = "berth.probe";
/// Creating, attaching and removing the container, on top of the check's own time.
const SLACK: Duration = Duration::from_secs(15);

/// Sends the request and prints the first line of the answer, or `nc`'s
/// complaint. Arguments: host, path, address, port, seconds.
const SCRIPT: &str = r#"printf 'GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n' "$2" "$1" | nc -w "$5" "$3" "$4" 2>&1 | { read -r line; echo "$line"; }"#;

pub(super) async fn probe(
    docker: &Docker,
    image: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let network = network_holding(docker, addr.ip()).await?;
    let name = format!("berth-probe-{}", random_suffix());
    let seconds = timeout.as_secs().max(1).to_string();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![
            "sh".into(),
            "-c".into(),
            SCRIPT.into(),
            "probe".into(),
        ]),
        cmd: Some(vec![
            host.to_string(),
            path.to_string(),
            addr.ip().to_string(),
            addr.port().to_string(),
            seconds,
        ]),
        labels: Some([(LABEL_PROBE.to_string(), "true".to_string())].into()),
        host_config: Some(HostConfig {
            network_mode: Some(network),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        platform: String::new(),
    };
    let created = docker.create_container(Some(options), body).await.map_err(
        |e| match status_of(&e) {
            Some(404) => format!(
                "cannot probe {addr}: the probe image {image} is not on the engine; load it there"
            ),
            _ => format!("cannot probe {addr}: {}", map_err(e)),
        },
    )?;
    let outcome = tokio::time::timeout(timeout + SLACK, run(docker, &created.id)).await;
    let _ = docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await;
    let line = match outcome {
        Ok(result) => result?,
        Err(_) => String::new(),
    };
    verdict(&line, addr, path, timeout)
}

/// Starts the probe container, waits for it and returns its output.
async fn run(docker: &Docker, id: &str) -> Result<String, String> {
    docker
        .start_container(id, None)
        .await
        .map_err(|e| format!("cannot start the probe: {}", map_err(e)))?;
    let mut waits = docker.wait_container(id, None::<WaitContainerOptions>);
    let _ = waits.next().await;
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        timestamps: true,
        tail: "all".into(),
        ..Default::default()
    };
    let mut lines = log_lines(docker.logs(id, Some(options)), id.to_string());
    match lines.next().await {
        Some(Ok(line)) => Ok(line.text),
        Some(Err(e)) => Err(format!("cannot read the probe's output: {e}")),
        None => Ok(String::new()),
    }
}

/// The engine's network whose subnet holds `ip`.
async fn network_holding(docker: &Docker, ip: IpAddr) -> Result<String, String> {
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(|e| format!("cannot probe {ip}: {}", map_err(e)))?;
    networks
        .into_iter()
        .find(|n| {
            n.ipam
                .as_ref()
                .and_then(|i| i.config.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|c| c.subnet.as_deref())
                .any(|subnet| in_subnet(ip, subnet))
        })
        .and_then(|n| n.name)
        .ok_or_else(|| {
            format!("cannot probe {ip}: no network of this engine holds that address (is the process's network attached here?)")
        })
}

fn in_subnet(ip: IpAddr, subnet: &str) -> bool {
    let Some((base, bits)) = subnet.split_once('/') else {
        return false;
    };
    match (ip, base.parse::<IpAddr>(), bits.parse::<u32>()) {
        (IpAddr::V4(ip), Ok(IpAddr::V4(base)), Ok(bits)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        (IpAddr::V6(ip), Ok(IpAddr::V6(base)), Ok(bits)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(base) & mask
        }
        _ => false,
    }
}

/// The check's result from the first line the probe printed, worded as the
/// in-process check words it (`crate::probe::http_check`), so callers tell a
/// process that is not listening yet from one that answers wrongly.
fn verdict(line: &str, addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    if let Some(rest) = line.strip_prefix("HTTP/1.") {
        let status: u16 = rest
            .get(2..5)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {line:?}"))?;
        return if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(format!("GET {path} answered {status}"))
        };
    }
    if line.contains("refused") {
        return Err(format!("connect {addr}: connection refused"));
    }
    if line.is_empty() {
        return Err(format!(
            "GET {path} took longer than {}s",
            timeout.as_secs()
        ));
    }
    Err(format!("connect {addr}: {line}"))
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip: IpAddr = "10.0.1.5".parse().unwrap();
        assert!(in_subnet(ip, "10.0.1.0/24"));
        assert!(!in_subnet(ip, "10.0.2.0/24"));
        assert!(in_subnet(ip, "0.0.0.0/0"));
        assert!(!in_subnet(ip, "fd00::/8"));
        assert!(!in_subnet(ip, "garbage"));
    }

    #[test]
    fn verdicts_read_like_the_local_check() {
        let addr: SocketAddr = "10.0.1.5:80".parse().unwrap();
        let t = Duration::from_secs(2);
        assert_eq!(verdict("HTTP/1.1 200 OK", addr, "/", t), Ok(200));
        assert_eq!(
            verdict("HTTP/1.0 503 Busy", addr, "/h", t),
            Err("GET /h answered 503".into())
        );
        let refused = verdict(
            "nc: can't connect to remote host (10.0.1.5): Connection refused",
            addr,
            "/",
            t,
        )
        .unwrap_err();
        assert!(crate::probe::not_listening_yet(&refused), "{refused}");
        assert_eq!(
            verdict("", addr, "/", t),
            Err("GET / took longer than 2s".into())
        );
    }
}
