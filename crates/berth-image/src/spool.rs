//! A `docker save` archive that arrives as a byte stream (an engine's export):
//! spooled to a temp file once, then thinned for each receiver. Reading the
//! layers needs the whole archive (the configs may come after the layers), and
//! every receiver lacks different layers, so the stream cannot be thinned in
//! passing.

use crate::saved_image::{self, SavedImage, SavedImageError};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::collections::BTreeSet;
use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the image export broke off after {received} bytes: {reason}; is the engine it comes from still up? Try again"
    )]
    Receive { received: u64, reason: String },

    #[error(
        "cannot write or read the image spool {}: {source}; free some space there (or give berth another temp dir)",
        path.display()
    )]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Saved(#[from] SavedImageError),
}

/// A received `docker save` archive on disk (removed when dropped, or when the
/// last stream of it read by [`SpooledSave::thinned`] is).
#[derive(Debug)]
pub struct SpooledSave {
    file: Arc<TempPath>,
    image: SavedImage,
    size: u64,
    dir: PathBuf,
}

/// One receiver's copy of a spooled archive.
pub struct Thinned {
    /// Layers in the archive.
    pub layers: usize,
    /// Layers whose data the copy holds (the others the receiver has).
    pub sent: usize,
    /// The copy's size.
    pub bytes: u64,
    /// The copy; its temp file goes when the stream is dropped.
    pub stream: BoxStream<'static, io::Result<Bytes>>,
}

impl std::fmt::Debug for Thinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thinned")
            .field("layers", &self.layers)
            .field("sent", &self.sent)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl SpooledSave {
    /// Writes `stream` to a temp file in `dir` and reads its layers.
    pub async fn spool<S, E>(stream: S, dir: &Path) -> Result<Self, SpoolError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        let (file, path) = tempfile::Builder::new()
            .prefix("berth-save-")
            .suffix(".tar")
            .tempfile_in(dir)
            .map_err(io_err(dir))?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Receive {
                received: size,
                reason: e.to_string(),
            })?;
            file.write_all(&chunk).await.map_err(io_err(&path))?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(io_err(&path))?;
        drop(file);
        let read_path = path.to_path_buf();
        let image = blocking(&path, move || saved_image::read(&read_path)).await?;
        Ok(Self {
            file: Arc::new(path),
            image,
            size,
            dir: dir.to_path_buf(),
        })
    }

    /// What the archive holds.
    pub fn image(&self) -> &SavedImage {
        &self.image
    }

    /// The archive's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The archive without the data of the layers whose chain id is in
    /// `present` (what the receiver has). An archive with links between its
    /// entries travels whole: leaving a layer out could cut a link's target.
    pub async fn thinned(&self, present: &BTreeSet<String>) -> Result<Thinned, SpoolError> {
        let layers = self.image.layers.len();
        let skip: BTreeSet<String> = if self.image.has_links {
            BTreeSet::new()
        } else {
            self.image
                .layers
                .iter()
                .filter(|l| present.contains(&l.chain_id))
                .map(|l| l.path.clone())
                .collect()
        };
        if skip.is_empty() {
            let stream = file_stream(&self.file, Arc::clone(&self.file)).await?;
            return Ok(Thinned {
                layers,
                sent: layers,
                bytes: self.size,
                stream,
            });
        }
        let sent = self
            .image
            .layers
            .iter()
            .filter(|l| !skip.contains(&l.path))
            .count();
        let thin = tempfile::Builder::new()
            .prefix("berth-thin-")
            .suffix(".tar")
            .tempfile_in(&self.dir)
            .map_err(|source| SpoolError::Io {
                path: self.dir.clone(),
                source,
            })?
            .into_temp_path();
        let (src, dst) = (self.file.to_path_buf(), thin.to_path_buf());
        blocking(&thin, move || saved_image::copy_without(&src, &dst, &skip)).await?;
        let bytes = std::fs::metadata(&thin)
            .map_err(|source| SpoolError::Io {
                path: thin.to_path_buf(),
                source,
            })?
            .len();
        let path = thin.to_path_buf();
        let stream = file_stream(&path, thin).await?;
        Ok(Thinned {
            layers,
            sent,
            bytes,
            stream,
        })
    }
}

/// The file at `path` as a stream that owns `keep` (the temp file's guard),
/// so the file lives until the stream is dropped.
async fn file_stream<K: Send + Sync + 'static>(
    path: &Path,
    keep: K,
) -> Result<BoxStream<'static, io::Result<Bytes>>, SpoolError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(ReaderStream::new(file)
        .map(move |chunk| {
            let _ = &keep;
            chunk
        })
        .boxed())
}

/// Runs tar work off the async threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, SavedImageError> + Send + 'static,
) -> Result<T, SpoolError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(SpoolError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::saved_image;

    async fn collect(stream: BoxStream<'static, io::Result<Bytes>>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn names(tar: &[u8]) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in tar::Archive::new(tar).entries()? {
            names.push(e?.path()?.display().to_string());
        }
        Ok(names)
    }

    /// A saved archive as an engine sends it: in small chunks.
    fn chunks(data: Vec<u8>) -> impl Stream<Item = Result<Bytes, String>> + Send {
        let parts: Vec<Result<Bytes, String>> = data
            .chunks(700)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(parts)
    }

    #[tokio::test]
    async fn a_received_export_is_thinned_per_receiver() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let source = std::fs::read(saved_image(dir.path(), false)?)?;
        let spool_dir = dir.path().join("spool");
        std::fs::create_dir(&spool_dir)?;
        let spooled = SpooledSave::spool(chunks(source.clone()), &spool_dir).await?;
        assert_eq!(spooled.size(), source.len() as u64);
        assert_eq!(spooled.image().layers.len(), 2);
        let chains = berth_core::layers::chain_ids(&["sha256:1".into(), "sha256:2".into()]);

        // A receiver with the base layer gets only the top one's data.
        let thin = spooled
            .thinned(&BTreeSet::from([chains[0].clone()]))
            .await?;
        assert_eq!((thin.layers, thin.sent), (2, 1));
        let bytes = collect(thin.stream).await?;
        assert_eq!(bytes.len() as u64, thin.bytes);
        assert_eq!(names(&bytes)?, ["manifest.json", "c.json", "b/layer.tar"]);

        // One with nothing gets the archive as it came.
        let whole = spooled.thinned(&BTreeSet::new()).await?;
        assert_eq!((whole.layers, whole.sent), (2, 2));
        assert_eq!(collect(whole.stream).await?, source);

        // The thin copy is gone with its stream; the spool with the value.
        drop(spooled);
        assert_eq!(std::fs::read_dir(&spool_dir)?.count(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn links_travel_whole_and_a_broken_stream_is_named()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let linked = std::fs::read(saved_image(dir.path(), true)?)?;
        let spooled = SpooledSave::spool(chunks(linked.clone()), dir.path()).await?;
        let chains = berth_core::layers::chain_ids(&["sha256:1".into(), "sha256:2".into()]);
        let thin = spooled.thinned(&chains.into_iter().collect()).await?;
        assert_eq!(thin.sent, 2);
        assert_eq!(collect(thin.stream).await?, linked);

        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("connection reset".to_string()),
        ]);
        let e = SpooledSave::spool(broken, dir.path()).await.err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("after 3 bytes") && text.contains("connection reset"),
            "{text}"
        );
        Ok(())
    }
}
