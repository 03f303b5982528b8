//! Resources (`resources:` in `berth.yml`): the databases and caches berth runs
//! for an app. Each runs as a singleton service of its name (see
//! `berth_core::Resource`) with a volume of its name; this module gives its
//! container the credentials the image's interface expects (`POSTGRES_*`,
//! redis' `--requirepass`), gives the services that name it its URL, and
//! checks it speaks its protocol. Passwords are made once per app and
//! resource and kept sealed in the store (`Store::resource_password`).

use crate::error::Result;
use crate::rack::Rack;
use berth_core::{Manifest, RESOURCE_DB_USER, Resource, ResourceKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment (and for redis the command) of resource `res`'s container.
pub fn container_env(
    rack: &Rack,
    app: &str,
    name: &str,
    res: &Resource,
) -> Result<(BTreeMap<String, String>, Option<Vec<String>>)> {
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
