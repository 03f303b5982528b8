//! Resources (`resources:` in `berth.yml`): the databases and caches berth runs
//! for an app. Each runs as a singleton service of its name (see
//! `berth_core::Resource`) with a volume of its name; this module gives its
//! container the credentials the image's interface expects (`POSTGRES_*`,
//! redis' `--requirepass`), gives the services that name it its URL, and
//! checks it speaks its protocol. Passwords are made once per app and
//! resource and kept sealed in the store (`Store::resource_password`).

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::ResourceEntry;
use berth_core::{Manifest, ProcessState, RESOURCE_DB_USER, Resource, ResourceKind};
use berth_runtime::SessionOutput;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A container's environment and command (`None`: the image's).
pub type EnvAndCommand = (BTreeMap<String, String>, Option<Vec<String>>);

/// The environment (and for redis the command) of resource `res`'s container.
pub fn container_env(rack: &Rack, app: &str, name: &str, res: &Resource) -> Result<EnvAndCommand> {
    let password = rack.store.resource_password(app, name)?;
    let mut env = BTreeMap::new();
    let command = match res.kind {
        ResourceKind::Postgres => {
            env.insert("POSTGRES_USER".into(), RESOURCE_DB_USER.into());
            env.insert("POSTGRES_DB".into(), RESOURCE_DB_USER.into());
            env.insert("POSTGRES_PASSWORD".into(), password);
            None
        }
        ResourceKind::Redis => Some(
            [
                "redis-server",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--dir",
                "/data",
                "--appendonly",
                "yes",
                "--requirepass",
                &password,
            ]
            .map(String::from)
            .to_vec(),
        ),
    };
    Ok((env, command))
}

/// The URL variables service `service` gets for the resources it names.
pub fn service_env(
    rack: &Rack,
    app: &str,
    manifest: &Manifest,
    service: &str,
) -> Result<BTreeMap<String, String>> {
    let mut passwords = BTreeMap::new();
    if let Some(svc) = manifest.services.get(service) {
        for name in &svc.resources {
            passwords.insert(name.clone(), rack.store.resource_password(app, name)?);
        }
    }
    Ok(manifest.resource_env(service, &|name| passwords.get(name).cloned()))
}

/// The URL of resource `name`, with its password or with `****` in its place.
pub fn url(rack: &Rack, app: &str, name: &str, kind: ResourceKind, reveal: bool) -> Result<String> {
    let password = if reveal {
        rack.store.resource_password(app, name)?
    } else {
        "****".to_string()
    };
    Ok(berth_core::resource_url(name, kind, &password))
}

/// The resources of `app`'s promoted release, URLs masked.
pub fn list(rack: &Rack, app: &str) -> Result<Vec<ResourceEntry>> {
    berth_core::validate_app_name(app)?;
    rack.store.app(app)?;
    let Some(manifest) = rack.current_manifest(app)? else {
        return Ok(Vec::new());
    };
    let rows = rack.store.processes(Some(app))?;
    manifest
        .resources()
        .map(|(name, res)| {
            let row = rows
                .iter()
                .find(|p| &p.service == name && p.state != ProcessState::Stopping);
            let status = match row {
                None => "stopped",
                Some(p) if p.state == ProcessState::Starting => "starting",
                Some(p) => match rack.observed(app, &p.id) {
                    None => "missing",
                    Some(o) if !o.running => "crashed",
                    Some(o) if !o.healthy => "unhealthy",
                    Some(_) => "running",
                },
            };
            let used_by: Vec<String> = manifest
                .services
                .iter()
                .filter(|(_, s)| s.resources.contains(name))
                .map(|(n, _)| n.clone())
                .collect();
            let mut env = vec![berth_core::resource_env_name(name)];
            let conventional = res.kind.conventional_env();
            if used_by.iter().any(|u| {
                manifest
                    .resource_env(u, &|_| Some(String::new()))
                    .contains_key(conventional)
            }) {
                env.push(conventional.to_string());
            }
            Ok(ResourceEntry {
                name: name.clone(),
                kind: res.kind.name().into(),
                image: rack
                    .store
                    .resource_image(app, name)?
                    .unwrap_or_else(|| res.image.clone()),
                status: status.into(),
                process: row.map(|p| p.id.clone()),
                url: url(rack, app, name, res.kind, false)?,
                env,
                used_by,
                volume: name.clone(),
            })
        })
        .collect()
}

/// Resource `name` of `app`'s promoted release, or a not-found error naming
/// the app's resources.
pub fn get(rack: &Rack, app: &str, name: &str) -> Result<(ResourceEntry, ResourceKind)> {
    berth_core::validate_service_name(name)?;
    let all = list(rack, app)?;
    let names: Vec<String> = all.iter().map(|r| r.name.clone()).collect();
    let entry = all.into_iter().find(|r| r.name == name).ok_or_else(|| {
        Error::NotFound(if names.is_empty() {
            format!(
                "app {app} has no resource {name}: its release declares no resources; add `resources: {{{name}: {{type: postgres}}}}` to berth.yml and deploy"
            )
        } else {
            format!(
                "app {app} has no resource {name}; its resources are: {}",
                names.join(", ")
            )
        })
    })?;
    let kind = ResourceKind::parse(&entry.kind)
        .ok_or_else(|| Error::Internal(format!("unknown resource type {}", entry.kind)))?;
    Ok((entry, kind))
}

/// Resource `name`'s URL with its password.
pub fn reveal(rack: &Rack, app: &str, name: &str) -> Result<String> {
    let (_, kind) = get(rack, app, name)?;
    url(rack, app, name, kind, true)
}

/// The running container of resource `name` (refused when none runs), and its kind.
async fn running_container(rack: &Rack, app: &str, name: &str) -> Result<(String, ResourceKind)> {
    let (entry, kind) = get(rack, app, name)?;
    let not_running = || {
        Error::Conflict(format!(
            "resource {name} of app {app} is {}; it must run for this (see `berth ps -a {app}` and `berth logs --service {name} -a {app}`)",
            entry.status
        ))
    };
    let process = entry.process.as_deref().ok_or_else(not_running)?;
    let observed = rack.observed(app, process).ok_or_else(not_running)?;
    if !observed.running {
        return Err(not_running());
    }
    Ok((observed.container_id, kind))
}

/// Where the server reaches resource `name` (its address on the app network,
/// its port), for `berth resources proxy`; also its process.
pub async fn address(rack: &Rack, app: &str, name: &str) -> Result<(SocketAddr, String)> {
    let (entry, kind) = get(rack, app, name)?;
    let (container, _) = running_container(rack, app, name).await?;
    let ip = rack
        .runtime
        .inspect_container(&container)
        .await?
        .and_then(|info| info.ip)
        .ok_or_else(|| {
            Error::Conflict(format!(
                "resource {name} of app {app} has no address on the app network yet; try again in a moment"
            ))
        })?;
    Ok((
        SocketAddr::new(ip, kind.port()),
        entry.process.unwrap_or_default(),
    ))
}

/// Runs `command` in `container`, feeding it `input` when given; its stdout goes
/// to `out`. Fails with its stderr when it exits other than 0.
async fn exec_to(
    rack: &Rack,
    container: &str,
    command: &[&str],
    input: Option<BoxStream<'static, std::io::Result<Bytes>>>,
    out: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
) -> Result<()> {
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let (exec_id, mut session) = rack
        .runtime
        .exec(container, &command, false, input.is_some())
        .await?;
    let feed = async {
        if let Some(mut input) = input {
            while let Some(chunk) = input.next().await {
                let chunk =
                    chunk.map_err(|e| Error::Invalid(format!("reading the upload: {e}")))?;
                session
                    .input
                    .write_all(&chunk)
                    .await
                    .map_err(|e| Error::Failed {
                        message: format!("{} stopped reading its input: {e}", command[0]),
                        logs: vec![],
                    })?;
            }
            let _ = session.input.shutdown().await;
        }
        Ok::<(), Error>(())
    };
    let mut stderr = Vec::new();
    let read = async {
        while let Some(item) = session.output.next().await {
            match item? {
                SessionOutput::Stdout(b) => out.write_all(&b).await.map_err(|e| {
                    Error::Internal(format!("cannot write the output of {}: {e}", command[0]))
                })?,
                SessionOutput::Stderr(b) if stderr.len() < 64 * 1024 => {
                    stderr.extend_from_slice(&b)
                }
                SessionOutput::Stderr(_) => {}
            }
        }
        Ok::<(), Error>(())
    };
    let (fed, read) = tokio::join!(feed, read);
    fed?;
    read?;
    let mut code = None;
    for _ in 0..50 {
        code = rack.runtime.exec_exit_code(&exec_id).await?;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match code {
        Some(0) => Ok(()),
        other => Err(Error::Failed {
            message: format!(
                "{} exited with code {}",
                command.join(" "),
                other.map_or("?".to_string(), |c| c.to_string())
            ),
            logs: String::from_utf8_lossy(&stderr)
                .lines()
                .map(String::from)
                .collect(),
        }),
    }
}

/// The refusal for a redis backup or restore.
fn redis_refusal(app: &str, name: &str) -> Error {
    Error::Invalid(format!(
        "resource {name} of app {app} is a redis resource, whose dump is its data directory: use `berth volumes backup {name} -a {app} > {name}.tar` (and `volumes restore`)"
    ))
}

/// A logical dump of resource `name`: `pg_dump --format=custom` run inside its
/// container, spooled to a temp file so a failed dump is an error, not a
/// short file.
pub async fn backup(
    rack: &Rack,
    app: &str,
    name: &str,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
    let (container, kind) = running_container(rack, app, name).await?;
    if kind != ResourceKind::Redis {
        let spool = tempfile::tempfile_in(rack.data_dir.join("tmp"))
            .map_err(|e| Error::Internal(format!("cannot make a temp file for the dump: {e}")))?;
        let mut file = tokio::fs::File::from_std(spool);
        exec_to(
            rack,
            &container,
            &[
                "pg_dump",
                "--format=custom",
                "--username",
                RESOURCE_DB_USER,
                "--dbname",
                RESOURCE_DB_USER,
            ],
            None,
            &mut file,
        )
        .await?;
        file.flush()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        file.rewind()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        rack.logs
            .event(app, &format!("resource {name} backed up (pg_dump)"));
        return Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed());
    }
    Err(redis_refusal(app, name))
}

/// Restores a dump made by [`backup`] into resource `name`: `pg_restore
/// --clean --if-exists` inside its container (objects in the dump are
/// replaced, others kept).
pub async fn restore(
    rack: &Rack,
    app: &str,
    name: &str,
    dump: BoxStream<'static, std::io::Result<Bytes>>,
) -> Result<()> {
    let (container, kind) = running_container(rack, app, name).await?;
    if kind == ResourceKind::Redis {
        return Err(redis_refusal(app, name));
    }
    let mut sink = tokio::io::sink();
    exec_to(
        rack,
        &container,
        &[
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--username",
            RESOURCE_DB_USER,
            "--dbname",
            RESOURCE_DB_USER,
        ],
        Some(dump),
        &mut sink,
    )
    .await?;
    rack.logs.event(
        app,
        &format!("resource {name} restored from a dump (pg_restore)"),
    );
    Ok(())
}

/// One protocol check of a resource at `addr`: postgres answers a startup
/// message for its database with an authentication request (not an error
/// such as "the database system is starting up"); redis answers `AUTH` and
/// `PING` with `+OK` and `+PONG`.
pub async fn check(
    kind: ResourceKind,
    addr: SocketAddr,
    password: &str,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        match kind {
            ResourceKind::Postgres => {
                s.write_all(&postgres_startup(RESOURCE_DB_USER, RESOURCE_DB_USER))
                    .await
                    .map_err(|e| e.to_string())?;
                let mut head = [0u8; 5];
                s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
                match head[0] {
                    b'R' => Ok(()),
                    b'E' => {
                        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                        let mut body = vec![0u8; (len.saturating_sub(4) as usize).min(4096)];
                        let _ = s.read_exact(&mut body).await;
                        Err(format!("postgres refused: {}", postgres_error(&body)))
                    }
                    other => Err(format!(
                        "not a postgres answer (first byte {other:#04x}) from {addr}"
                    )),
                }
            }
            ResourceKind::Redis => {
                let mut req = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
                req.push_str("*1\r\n$4\r\nPING\r\n");
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while !got.ends_with(b"+PONG\r\n") && got.len() < 4096 {
                    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.starts_with(b"-") && got.ends_with(b"\r\n") {
                        break;
                    }
                }
                if got == b"+OK\r\n+PONG\r\n" {
                    Ok(())
                } else {
                    Err(format!(
                        "redis answered {:?} to AUTH and PING",
                        String::from_utf8_lossy(&got).trim()
                    ))
                }
            }
        }
    };
    tokio::time::timeout(timeout, talk)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {timeout:?}")))
}

/// A protocol 3.0 startup message.
fn postgres_startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// The message field (`M`) of a postgres ErrorResponse body.
fn postgres_error(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_else(|| "an error".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_is_length_prefixed() {
        let m = postgres_startup("app", "app");
        assert_eq!(
            u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert!(m.ends_with(b"database\0app\0\0"));
        assert_eq!(
            postgres_error(b"SFATAL\0C57P03\0Mthe database system is starting up\0\0"),
            "the database system is starting up"
        );
    }

    #[tokio::test]
    async fn a_silent_or_foreign_server_fails_the_check() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let t = Duration::from_secs(2);
        assert!(check(ResourceKind::Postgres, addr, "x", t).await.is_err());
        assert!(check(ResourceKind::Redis, addr, "x", t).await.is_err());
    }
}
