//! Volume calls: list, and a volume's content as a tar out (backup) and in (restore).

use crate::{Client, Error, UPLOAD_CHUNK};
use berth_api::VolumeEntry;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use tokio::io::AsyncRead;

impl Client {
    /// `GET /apps/{app}/volumes`
    pub async fn volumes(&self, app: &str) -> Result<Vec<VolumeEntry>, Error> {
        self.get_json(&["apps", app, "volumes"]).await
    }

    /// `GET /apps/{app}/volumes/{name}/archive`: the volume's content as a tar, streamed.
    pub async fn volume_backup(
        &self,
        app: &str,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let url = self.url(&["apps", app, "volumes", name, "archive"])?;
        let resp = self.send(self.http.get(url.clone()), true).await?;
        let resp = self.expect_type("GET", &url, resp, "application/x-tar")?;
        let shown = url.to_string();
        Ok(resp
            .bytes_stream()
            .map(move |c| {
                c.map_err(|e| Error::Request {
                    url: shown.clone(),
                    reason: e.to_string(),
                })
            })
            .boxed())
    }

    /// `PUT /apps/{app}/volumes/{name}/archive`: extracts the tar read from `tar` (e.g.
    /// stdin) into the volume.
    pub async fn volume_restore(
        &self,
        app: &str,
        name: &str,
        tar: impl AsyncRead + Send + 'static,
    ) -> Result<(), Error> {
        let url = self.url(&["apps", app, "volumes", name, "archive"])?;
        let body = tokio_util::io::ReaderStream::with_capacity(tar, UPLOAD_CHUNK);
        let req = self
            .http
            .put(url)
            .header("content-type", "application/x-tar")
            .body(reqwest::Body::wrap_stream(body));
        self.send(req, true).await?;
        Ok(())
    }
}
