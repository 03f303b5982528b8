//! Images from the manager's engine to the nodes, without a registry: each
//! node that lacks the image gets the manager's `docker save` of it without
//! the layers it already has, and loads it.

use super::engines::NodeEngines;
use crate::docker::DockerRuntime;
use crate::{Runtime, RuntimeError};
use berth_image::SpooledSave;
use std::path::Path;
use tokio::sync::{OnceCell, mpsc};

/// A node to send to: (node id, hostname for messages).
pub(crate) type Target = (String, String);

/// What became of one node.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It had the image already.
    Had,
    /// It got `sent` of `layers` layers' data, `bytes` in all.
    Sent {
        layers: usize,
        sent: usize,
        bytes: u64,
    },
    /// It could not get it (the reason).
    Failed(String),
}

impl Outcome {
    pub(crate) fn has_image(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }

    /// One progress line, e.g. `node2: 3 of 5 layers sent (1.2 MiB)`.
    pub(crate) fn line(&self, hostname: &str) -> String {
        match self {
            Outcome::Had => format!("{hostname}: has the image"),
            Outcome::Sent {
                layers,
                sent,
                bytes,
            } => format!(
                "{hostname}: {sent} of {layers} layers sent ({})",
                human_bytes(*bytes)
            ),
            Outcome::Failed(why) => format!("{hostname}: the image could not be sent: {why}"),
        }
    }
}

/// Sends `image` (on the manager, known there by `image_id`) to every target
/// that lacks it, all at once; the manager's export is made only if one does,
/// and only once. One line per node goes to `progress` as it finishes.
pub(crate) async fn distribute(
    manager: &DockerRuntime,
    engines: &dyn NodeEngines,
    image: &str,
    image_id: &str,
    targets: &[Target],
    temp_dir: &Path,
    progress: Option<&mpsc::Sender<String>>,
) -> Vec<(Target, Outcome)> {
    let export: OnceCell<std::result::Result<SpooledSave, String>> = OnceCell::new();
    let one = |target: Target| {
        let export = &export;
        async move {
            let outcome = match engines.engine(&target.0).await {
                Ok(engine) => send(manager, &*engine, image, image_id, export, temp_dir).await,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            if let Some(progress) = progress {
                let _ = progress.send(outcome.line(&target.1)).await;
            }
            (target, outcome)
        }
    };
    futures_util::future::join_all(targets.iter().cloned().map(one)).await
}

async fn send(
    manager: &DockerRuntime,
    node: &dyn Runtime,
    image: &str,
    image_id: &str,
    export: &OnceCell<std::result::Result<SpooledSave, String>>,
    temp_dir: &Path,
) -> Outcome {
    match node.image_exists(image_id).await {
        Ok(true) => return Outcome::Had,
        Ok(false) => {}
        Err(e) => return Outcome::Failed(e.to_string()),
    }
    let present = match node.layer_chains().await {
        Ok(chains) => chains,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let spooled = export
        .get_or_init(|| async {
            SpooledSave::spool(manager.export_image(image), temp_dir)
                .await
                .map_err(|e| format!("exporting {image} from the manager: {e}"))
        })
        .await;
    let spooled = match spooled {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e.clone()),
    };
    let thin = match spooled.thinned(&present).await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let (layers, sent, bytes) = (thin.layers, thin.sent, thin.bytes);
    match node.load_image(thin.stream).await {
        Ok(_) => Outcome::Sent {
            layers,
            sent,
            bytes,
        },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// The error for an image no node where processes may run could get.
pub(crate) fn nowhere(image: &str, outcomes: &[(Target, Outcome)]) -> RuntimeError {
    let why: Vec<String> = outcomes.iter().map(|(t, o)| o.line(&t.1)).collect();
    RuntimeError::Engine(format!(
        "image {image} reached no node that may run processes ({}); check the nodes with `docker node ls` and their engines",
        why.join("; ")
    ))
}

fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let sent = Outcome::Sent {
            layers: 5,
            sent: 3,
            bytes: 1_300_000,
        };
        assert_eq!(sent.line("node2"), "node2: 3 of 5 layers sent (1.2 MiB)");
        assert_eq!(Outcome::Had.line("node3"), "node3: has the image");
        assert!(!Outcome::Failed("x".into()).has_image());
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
