//! Uploads are spooled to a temp file in the data dir before anything reads
//! them, refusing more than `--max-upload`.

use crate::error::{Error, Result};
use crate::rack::Rack;
use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

pub async fn spool(rack: &Rack, body: Body) -> Result<tempfile::TempPath> {
    let tmp = rack.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let path = tempfile::NamedTempFile::new_in(&tmp)?.into_temp_path();
    let mut file = tokio::fs::File::create(&path).await?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Invalid(format!("upload interrupted: {e}")))?;
        total += chunk.len() as u64;
        if total > rack.max_upload {
            return Err(Error::TooLarge(format!(
                "the upload is over {} MiB; exclude build outputs and dependencies with .dockerignore",
                rack.max_upload >> 20
            )));
        }
        file.write_all(&chunk).await.map_err(|e| {
            Error::DiskFull(
                crate::disk::full_message("store the upload", "tmp", &tmp, &e).unwrap_or_else(
                    || format!("cannot store the upload: {e}; free space in the server's data dir"),
                ),
            )
        })?;
    }
    file.flush().await?;
    if total == 0 {
        return Err(Error::Invalid(
            "the upload is empty; send the source directory as a tar".into(),
        ));
    }
    Ok(path)
}
