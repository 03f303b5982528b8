//! The rack's own updates: start one (with the new binary, or with the one
//! already in place on the server), and read how they went.

use crate::{Client, Error, UPLOAD_CHUNK};
use berth_api::RackUpdate;
use std::path::Path;

impl Client {
    /// `POST /rack/update`: uploads the binary at `binary` with its SHA-256
    /// (checked by the server), or, with `None`, has the server take the new
    /// binary already put at its own path. The server hands over right after
    /// answering; follow the update with [`Client::rack_update`].
    pub async fn start_rack_update(
        &self,
        binary: Option<&Path>,
        timeout_secs: u64,
    ) -> Result<RackUpdate, Error> {
        let mut url = self.url(&["rack", "update"])?;
        url.query_pairs_mut()
            .append_pair("timeout", &timeout_secs.to_string());
        let req = match binary {
            None => self.http.post(url.clone()),
            Some(path) => {
                let sha256 = sha256_file(path).await?;
                url.query_pairs_mut().append_pair("sha256", &sha256);
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| file_error(path, &e))?;
                let body = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK);
                self.http
                    .post(url.clone())
                    .header("content-type", "application/octet-stream")
                    .body(reqwest::Body::wrap_stream(body))
            }
        };
        let resp = self.send(req, true).await?;
        self.decode("POST", &url, resp).await
    }

    /// `GET /rack/updates`: every update, newest first.
    pub async fn rack_updates(&self) -> Result<Vec<RackUpdate>, Error> {
        self.get_json(&["rack", "updates"]).await
    }

    /// `GET /rack/updates/{id}`
    pub async fn rack_update(&self, id: &str) -> Result<RackUpdate, Error> {
        self.get_json(&["rack", "updates", id]).await
    }
}

fn file_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            e.kind(),
            format!("{e}; pass the path of a berth binary with --binary"),
        ),
    }
}

async fn sha256_file(path: &Path) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let owned = path.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| file_error(path, &std::io::Error::other(e.to_string())))?;
    hashed.map_err(|e| file_error(path, &e))
}
