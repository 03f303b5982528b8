//! Volume calls: list, and a volume's content as a tar out (backup) and in (restore).

use crate::{Client, Error};
use berth_api::VolumeEntry;
use bytes::Bytes;
use futures_util::stream::BoxStream;
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
        self.get_stream(
            &["apps", app, "volumes", name, "archive"],
            "application/x-tar",
        )
        .await
    }

    /// `PUT /apps/{app}/volumes/{name}/archive`: extracts the tar read from `tar` (e.g.
    /// stdin) into the volume.
    pub async fn volume_restore(
        &self,
        app: &str,
        name: &str,
        tar: impl AsyncRead + Send + 'static,
    ) -> Result<(), Error> {
        self.put_stream(
            &["apps", app, "volumes", name, "archive"],
            "application/x-tar",
            tar,
        )
        .await
    }
}
