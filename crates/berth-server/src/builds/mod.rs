//! Builds: an uploaded source is checked (`upload`), unpacked safely
//! (`extract`) and built into images and a release (`build`); an uploaded
//! `docker save` tar is loaded and released the same way (`image`).

mod build;
mod extract;
mod image;
mod upload;

pub use build::{
    KEEP_RELEASES, build_of_tag, build_upload, kept_builds, prune_images, require_env,
};
pub use extract::{Source, extract_source};
pub use image::{ImageUpload, default_manifest, present_layers, release_image};
pub use upload::{DEFAULT_MAX_UPLOAD, open_checked, sniff};
