//! One HTTP health check: `GET path` with a `Host` header over a fresh
//! connection; any 2xx or 3xx answer within the timeout passes.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether a failed check was a refused connection: the process has not
/// bound its port yet, which is normal for the first moments after a start.
pub fn not_listening_yet(error: &str) -> bool {
    error.starts_with("connect ") && error.contains("refused")
}

/// One check: GET `path`; any 2xx or 3xx within `timeout` passes.
pub async fn http_check(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                format!("connect {addr}: connection refused")
            } else {
                format!("connect {addr}: {e}")
            }
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_not_listening_yet_but_an_error_answer_is_a_failure() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a local port");
        let refused = http_check(closed, "h", "/", Duration::from_secs(1))
            .await
            .expect_err("nothing listens there");
        assert!(not_listening_yet(&refused), "{refused}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let failed = http_check(addr, "h", "/health", Duration::from_secs(1))
            .await
            .expect_err("500 fails");
        assert_eq!(failed, "GET /health answered 500");
        assert!(!not_listening_yet(&failed));
    }
}
