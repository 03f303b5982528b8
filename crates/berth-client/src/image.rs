//! Deploying an image from the local engine: only the layers the server lacks travel.

use crate::saved_image::{self, SavedImageError};
use crate::{Client, Error, EventStream};
use std::collections::BTreeSet;
use std::path::Path;

/// What [`Client::thin_image`] found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinning {
    /// The archive has no layers, or links between its entries; nothing was asked
    /// or written, and it must travel whole.
    Whole,
    /// The server has `present` of the image's `layers` layers; when `present > 0`,
    /// the thin copy was written without their data.
    Asked { layers: usize, present: usize },
}

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
        self.post_json(&["apps", app, "image", "layers"], Some(chains))
            .await
    }

    /// Copies the `docker save` archive `saved` to `thin` without the data of the
    /// layers the server's engine already has, asking it with [`Client::present_layers`].
    pub async fn thin_image(
        &self,
        app: &str,
        saved: &Path,
        thin: &Path,
    ) -> Result<Thinning, Error> {
        let path = saved.to_path_buf();
        let image = blocking(saved, move || saved_image::read(&path)).await?;
        if image.has_links || image.layers.is_empty() {
            return Ok(Thinning::Whole);
        }
        let chains: Vec<String> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
        let present: BTreeSet<String> = self
            .present_layers(app, &chains)
            .await?
            .into_iter()
            .collect();
        let skip: BTreeSet<String> = image
            .layers
            .iter()
            .filter(|l| present.contains(&l.chain_id))
            .map(|l| l.path.clone())
            .collect();
        let found = Thinning::Asked {
            layers: image.layers.len(),
            present: skip.len(),
        };
        if !skip.is_empty() {
            let (src, dst) = (saved.to_path_buf(), thin.to_path_buf());
            blocking(saved, move || saved_image::copy_without(&src, &dst, &skip)).await?;
        }
        Ok(found)
    }
}

/// Runs tar work off the async threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, SavedImageError> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(SavedImageError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{response, saved_image, serve_once};

    fn names(path: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in tar::Archive::new(std::fs::File::open(path)?).entries()? {
            names.push(e?.path()?.display().to_string());
        }
        Ok(names)
    }

    #[tokio::test]
    async fn thin_copy_leaves_out_what_the_server_has() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let saved = saved_image(dir.path(), false)?;
        let chains = berth_core::layers::chain_ids(&["sha256:1".into(), "sha256:2".into()]);
        let body = serde_json::to_string(&[&chains[0]])?;
        let (url, task) = serve_once(response("200 OK", "application/json", &body)).await?;
        let thin = dir.path().join("thin.tar");
        let found = Client::new(&url, "t")?
            .thin_image("shop", &saved, &thin)
            .await?;
        assert_eq!(
            found,
            Thinning::Asked {
                layers: 2,
                present: 1
            }
        );
        assert_eq!(names(&thin)?, ["manifest.json", "c.json", "b/layer.tar"]);
        let req = String::from_utf8(task.await??)?;
        assert!(
            req.starts_with("POST /apps/shop/image/layers HTTP/1.1"),
            "{req}"
        );
        assert!(req.ends_with(&serde_json::to_string(&chains)?), "{req}");
        Ok(())
    }

    #[tokio::test]
    async fn nothing_present_or_links_mean_no_copy() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let thin = dir.path().join("thin.tar");
        let (url, _task) = serve_once(response("200 OK", "application/json", "[]")).await?;
        let client = Client::new(&url, "t")?;
        let saved = saved_image(dir.path(), false)?;
        let found = client.thin_image("shop", &saved, &thin).await?;
        assert_eq!(
            found,
            Thinning::Asked {
                layers: 2,
                present: 0
            }
        );
        assert!(!thin.exists());
        // Links: the server is not asked (no server answers this client any more).
        let linked = saved_image(dir.path(), true)?;
        assert_eq!(
            client.thin_image("shop", &linked, &thin).await?,
            Thinning::Whole
        );
        assert!(!thin.exists());
        Ok(())
    }
}
