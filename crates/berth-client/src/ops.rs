//! Client calls of the day-two routes: volumes, image deploys, release info, prune.

use crate::{Client, Error, EventStream};
use berth_api::{PruneReport, ReleaseInfo, VolumeEntry};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::Method;
use std::path::Path;

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

    /// `PUT /apps/{app}/volumes/{name}/archive`: extracts a tar into the volume.
    pub async fn volume_restore(
        &self,
        app: &str,
        name: &str,
        tar: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Result<(), Error> {
        let url = self.url(&["apps", app, "volumes", name, "archive"])?;
        let req = self
            .http
            .put(url)
            .header("content-type", "application/x-tar")
            .body(reqwest::Body::wrap_stream(tar));
        self.send(req, true).await?;
        Ok(())
    }

    /// `DELETE /apps/{app}?volumes=BOOL`: with `volumes`, its volumes go too.
    pub async fn delete_app_with(&self, app: &str, volumes: bool) -> Result<(), Error> {
        let mut url = self.url(&["apps", app])?;
        if volumes {
            url.query_pairs_mut().append_pair("volumes", "true");
        }
        self.send(self.http.request(Method::DELETE, url), true)
            .await?;
        Ok(())
    }

    /// `POST /apps/{app}/image`: uploads a `docker save` tar of `image` and
    /// streams the load, release and rollout.
    pub async fn deploy_image(
        &self,
        app: &str,
        image: &str,
        manifest_text: Option<&str>,
        image_tar: &Path,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<EventStream, Error> {
        let mut url = self.url(&["apps", app, "image"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("image", image);
            if let Some(text) = manifest_text {
                q.append_pair("manifest_text", text);
            }
        }
        self.post_tar(url, image_tar, progress).await
    }

    /// `POST /apps/{app}/image/layers`: which of these layer chain ids the server has.
    pub async fn present_layers(&self, app: &str, chains: &[String]) -> Result<Vec<String>, Error> {
        let url = self.url(&["apps", app, "image", "layers"])?;
        let resp = self
            .send(self.http.post(url.clone()).json(chains), true)
            .await?;
        self.decode(&url, resp).await
    }

    /// `GET /apps/{app}/releases/{id}/info`
    pub async fn release_info(&self, app: &str, id: &str) -> Result<ReleaseInfo, Error> {
        self.get_json(&["apps", app, "releases", id, "info"]).await
    }

    /// `POST /rack/prune`
    pub async fn prune(&self) -> Result<PruneReport, Error> {
        let url = self.url(&["rack", "prune"])?;
        let resp = self.send(self.http.post(url.clone()), true).await?;
        self.decode(&url, resp).await
    }
}
