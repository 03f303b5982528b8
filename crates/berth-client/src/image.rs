//! Deploying an image from the local engine: only the layers the server lacks travel.

use crate::{Client, Error, EventStream};
use std::path::Path;

impl Client {
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
}
