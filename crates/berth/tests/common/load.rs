//! A bounded HTTP load through the router: client threads that request one
//! host until told to stop, counting what went wrong.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub non_2xx: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
}

/// Reads one response from a keep-alive connection: (status, body, server closes).
pub fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
        close = true;
    }
    Ok((status, body, close))
}

/// One client: a keep-alive connection, reopened only when the router says so.
fn client(
    port: u16,
    host: String,
    fresh: bool,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    counts.reconnects.fetch_add(1, Ordering::Relaxed);
                    conn = Some(BufReader::new(s));
                }
                Err(e) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let Some(reader) = conn.as_mut() else {
            continue;
        };
        let request = if fresh {
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        } else {
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")
        };
        let result = reader
            .get_mut()
            .write_all(request.as_bytes())
            .and_then(|()| read_response(reader));
        match result {
            Ok((status, body, close)) => {
                if (200..300).contains(&status) {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.non_2xx.fetch_add(1, Ordering::Relaxed);
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body).trim()
                    ));
                }
                if close || fresh {
                    conn = None;
                }
            }
            Err(e) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("request: {e}"));
                conn = None;
            }
        }
        // A bounded load: the machine must still build and start containers.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `clients` threads requesting `host` through the router until finished.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub counts: Arc<Counts>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, host: &str, clients: usize) -> Load {
        Load::start_with(port, host, clients, false)
    }

    /// Like [`Load::start`]; with `fresh`, each request opens a connection of its
    /// own (and says `Connection: close`).
    pub fn start_with(port: u16, host: &str, clients: usize, fresh: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (host, stop, counts, log) =
                    (host.to_string(), stop.clone(), counts.clone(), log.clone());
                std::thread::spawn(move || client(port, host, fresh, stop, counts, log))
            })
            .collect();
        Load {
            stop,
            counts,
            log,
            clients,
        }
    }

    /// Stops the clients; returns what went wrong, in order.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().expect("client thread");
        }
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.clone()
    }
}
