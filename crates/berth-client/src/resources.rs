//! Resource calls: list, info, the URL revealed, and a logical dump out
//! (backup) and in (restore), an upgrade.

use crate::{Client, Error, EventStream, UPLOAD_CHUNK};
use berth_api::{ResourceEntry, ResourceUrl};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use tokio::io::AsyncRead;

impl Client {
    /// `GET /apps/{app}/resources`
    pub async fn resources(&self, app: &str) -> Result<Vec<ResourceEntry>, Error> {
        self.get_json(&["apps", app, "resources"]).await
    }

    /// `GET /apps/{app}/resources/{name}`
    pub async fn resource(&self, app: &str, name: &str) -> Result<ResourceEntry, Error> {
        self.get_json(&["apps", app, "resources", name]).await
    }

    /// `GET /apps/{app}/resources/{name}/url`: the URL with its password.
    pub async fn resource_url(&self, app: &str, name: &str) -> Result<ResourceUrl, Error> {
        self.get_json(&["apps", app, "resources", name, "url"])
            .await
    }

    /// `GET /apps/{app}/resources/{name}/backup`: a logical dump, streamed.
    pub async fn resource_backup(
        &self,
        app: &str,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let url = self.url(&["apps", app, "resources", name, "backup"])?;
        let resp = self.send(self.http.get(url.clone()), true).await?;
        let resp = self.expect_type("GET", &url, resp, "application/octet-stream")?;
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

    /// `PUT /apps/{app}/resources/{name}/backup`: restores the dump read from
    /// `dump` (e.g. stdin) into the resource.
    pub async fn resource_restore(
        &self,
        app: &str,
        name: &str,
        dump: impl AsyncRead + Send + 'static,
    ) -> Result<(), Error> {
        let url = self.url(&["apps", app, "resources", name, "backup"])?;
        let body = tokio_util::io::ReaderStream::with_capacity(dump, UPLOAD_CHUNK);
        let req = self
            .http
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        self.send(req, true).await?;
        Ok(())
    }

    /// `POST /apps/{app}/resources/{name}/upgrade`: a backup first, then the new image.
    pub async fn resource_upgrade(
        &self,
        app: &str,
        name: &str,
        image: &str,
    ) -> Result<EventStream, Error> {
        let body = berth_api::ResourceUpgrade {
            image: image.to_string(),
        };
        self.post_stream(&["apps", app, "resources", name, "upgrade"], Some(&body))
            .await
    }
}
