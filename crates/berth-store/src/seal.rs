//! Sealing of secrets at rest (XChaCha20-Poly1305) and token hashing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SealError {
    #[error(
        "master key {path}: {reason}; restore the data dir's master.key from a backup (without it sealed values cannot be read)"
    )]
    Key { path: String, reason: String },
    #[error(
        "a sealed value could not be opened: the master key does not match the store, or the value was tampered with"
    )]
    Open,
    #[error("sealing failed")]
    Seal,
}

const NONCE_LEN: usize = 24;

/// The rack's 256-bit master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(rand::random())
    }

    /// A key read from elsewhere (a backup archive, an old rack's key file).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// The key's bytes, to write a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Loads the key file, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), SealError> {
        let err = |reason: String| SealError::Key {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| err(format!("expected 32 bytes, found {}", bytes.len())))?;
                Ok((MasterKey(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_private(path, &key.0).map_err(|e| err(e.to_string()))?;
                Ok((key, true))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// nonce ‖ ciphertext; `aad` binds the value to where it belongs.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<String, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let pt = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Open)?;
        String::from_utf8(pt).map_err(|_| SealError::Open)
    }
}

/// Associated data for an env value: the app and key name, so a sealed value
/// cannot be moved to another key or app.
pub(crate) fn aad(app: &str, key: &str) -> Vec<u8> {
    format!("env\0{app}\0{key}").into_bytes()
}

/// Associated data of a resource's password: its app and name.
pub(crate) fn resource_aad(app: &str, name: &str) -> Vec<u8> {
    format!("resource\0{app}\0{name}").into_bytes()
}

pub(crate) fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}
