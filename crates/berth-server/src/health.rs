//! HTTP health checks against a process's address on its app network.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One check: GET `path`; any 2xx or 3xx within `timeout` passes.
pub async fn check(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let read = stream
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if read == 0 {
                break;
            }
            n += read;
        }
        let head = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let status: u16 = head
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
        if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "GET {path} took longer than {}s",
                timeout.as_secs()
            ))
        })
}
