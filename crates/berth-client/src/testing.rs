//! Test fixtures: a one-shot HTTP server and a small `docker save` archive.

pub use berth_image::testing::saved_image;

/// Accepts one connection, reads one request (head and Content-Length body), answers
/// `response`, and hands back the raw request.
pub async fn serve_once(
    response: String,
) -> std::io::Result<(String, tokio::task::JoinHandle<std::io::Result<Vec<u8>>>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        let mut req = Vec::new();
        let mut buf = [0u8; 8192];
        let body_start = loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Ok(req);
            }
            req.extend_from_slice(&buf[..n]);
            if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&req[..body_start]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while req.len() < body_start + len {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        sock.write_all(response.as_bytes()).await?;
        sock.shutdown().await?;
        Ok(req)
    });
    Ok((url, task))
}

/// An answer as berth's API gives it (with its version header).
pub fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{}: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        berth_api::API_VERSION_HEADER,
        berth_api::API_VERSION,
        body.len()
    )
}
