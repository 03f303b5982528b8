//! Helpers shared by the test files: build contexts, specs, HTTP, events.

#![allow(dead_code)]

use berth_runtime::{BuildRequest, ContainerSpec, Runtime, RuntimeError, RuntimeEvent};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub const NETWORK: &str = "berth-test-net";

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn words(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|w| w.to_string()).collect()
}

/// A build context tar holding `files` (path, content).
pub fn context_tar(files: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut tar = tar::Builder::new(file.reopen().unwrap());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
    file
}

/// Builds `dockerfile` (with `extra` files) as `tag`; the result and every output line.
pub async fn build(
    rt: &dyn Runtime,
    dockerfile: &str,
    extra: &[(&str, &str)],
    tag: &str,
    labels: BTreeMap<String, String>,
) -> (Result<String, RuntimeError>, Vec<String>) {
    let mut files = vec![("Dockerfile", dockerfile)];
    files.extend_from_slice(extra);
    let context = context_tar(&files);
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let result = rt
        .build_image(
            BuildRequest {
                context_tar: context.path(),
                dockerfile: "Dockerfile".into(),
                tag: tag.into(),
                args: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
                labels,
            },
            tx,
        )
        .await;
    (result, collector.await.unwrap())
}

pub fn spec(name: &str, image: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        command: (!command.is_empty()).then(|| words(command)),
        env: labels(&[("PORT", "8080")]),
        labels: labels(&[("berth.rack", "test")]),
        network: NETWORK.into(),
        stop_grace: 5,
        ..Default::default()
    }
}

pub async fn http_get(ip: IpAddr, port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect((ip, port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// A just-started program may need a moment to listen.
pub async fn http_get_retrying(ip: IpAddr, port: u16, path: &str) -> String {
    for _ in 0..100 {
        if let Ok(response) = http_get(ip, port, path).await {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing answers on {ip}:{port}");
}

/// The next event with `action` for container `id`, skipping others.
pub async fn next_event(
    events: &mut BoxStream<'static, Result<RuntimeEvent, RuntimeError>>,
    action: &str,
    id: &str,
) -> RuntimeEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if event.action == action && event.container_id == id {
                return event;
            }
        }
        panic!("the event stream ended before {action}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {action} event for {id}"))
}

/// The actions seen for `id` until (and with) `last`.
pub async fn actions_until(
    events: &mut BoxStream<'static, Result<RuntimeEvent, RuntimeError>>,
    id: &str,
    last: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if event.container_id != id {
                continue;
            }
            seen.push(event.action.clone());
            if event.action == last {
                return;
            }
        }
        panic!("the event stream ended; saw {seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {last} event for {id}"));
    seen
}
