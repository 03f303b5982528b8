//! Resource calls: list, info, the URL revealed, and a logical dump out
//! (backup) and in (restore), an upgrade.

use crate::{Client, Error, EventStream};
use berth_api::{ResourceEntry, ResourceUrl};
use bytes::Bytes;
use futures_util::stream::BoxStream;
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
        self.get_stream(
            &["apps", app, "resources", name, "backup"],
            "application/octet-stream",
        )
        .await
    }

    /// `PUT /apps/{app}/resources/{name}/backup`: restores the dump read from
    /// `dump` (e.g. stdin) into the resource.
    pub async fn resource_restore(
        &self,
        app: &str,
        name: &str,
        dump: impl AsyncRead + Send + 'static,
    ) -> Result<(), Error> {
        self.put_stream(
            &["apps", app, "resources", name, "backup"],
            "application/octet-stream",
            dump,
        )
        .await
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
