//! TLS for the client (rustls with ring): trust only a given CA when there is one
//! (the cluster CA of `berth login --ca-sha256`, `BERTH_CA_CERT`), else the
//! system's roots; fetching a CA pinned by its fingerprint.

use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Makes ring rustls's process-wide default, if no provider is yet. The workspace's
/// reqwest has no provider of its own (`rustls-no-provider`, so aws-lc-rs stays
/// out): a `reqwest::Client` built without a preconfigured TLS config (as
/// [`crate::Client`] has) needs this first, else it panics. `berth` calls it at start.
pub fn install_default_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The DER certificates of a PEM text; `what` names it in errors.
pub(crate) fn pem_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |reason: String| Error::BadCa {
        what: what.to_string(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(bad("it holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub(crate) fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fingerprint as given: colons and case do not matter.
fn normalize_fingerprint(fp: &str) -> String {
    fp.trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The rustls configuration of a client: only `ca_pem`'s certificates as roots when
/// given, else the system's.
pub(crate) fn client_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in pem_certs(pem, "the configured CA certificate")? {
                roots.add(cert).map_err(|e| Error::BadCa {
                    what: "the configured CA certificate".into(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; a server they would have
            // vouched for then fails with the untrusted-certificate error.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadCa {
            what: "the TLS settings".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Accepts any server certificate (signatures still checked): only for fetching a CA
/// certificate whose fingerprint is checked afterwards.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Fetches `GET base_url/ca.pem` without checking the server's certificate, and
/// returns it only if the SHA-256 of its DER is `sha256` (hex; colons and case
/// ignored). What `berth login --ca-sha256` and `berth agent --ca-sha256` trust.
pub async fn fetch_pinned_ca(base_url: &str, sha256: &str) -> Result<String, Error> {
    let base = crate::normalize_host(base_url)?;
    let want = normalize_fingerprint(sha256);
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadFingerprint {
            given: sha256.chars().take(100).collect(),
        });
    }
    let url = base.join("ca.pem").map_err(|e| Error::InvalidUrl {
        url: base.to_string(),
        reason: e.to_string(),
    })?;
    let provider = provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadCa {
            what: "the TLS settings".into(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| Error::Request {
            url: url.to_string(),
            reason: crate::root_cause(&e),
        })?;
    let resp = http.get(url.clone()).send().await.map_err(|e| {
        if e.is_connect() {
            Error::Connect {
                url: base.as_str().trim_end_matches('/').to_string(),
                reason: crate::root_cause(&e),
            }
        } else {
            Error::Request {
                url: url.to_string(),
                reason: crate::root_cause(&e),
            }
        }
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| Error::Request {
        url: url.to_string(),
        reason: crate::root_cause(&e),
    })?;
    if !status.is_success() {
        return Err(Error::Decode {
            url: url.to_string(),
            reason: format!(
                "it answered {status}, not a CA certificate; is this a berth server of this version?"
            ),
        });
    }
    let certs = pem_certs(&text, &format!("the certificate {url} answered"))?;
    let got = certs
        .first()
        .map(|c| sha256_hex(c.as_ref()))
        .unwrap_or_default();
    if got != want {
        return Err(Error::FingerprintMismatch {
            url: url.to_string(),
            expected: want,
            got,
        });
    }
    Ok(text)
}

/// Whether `e` (a transport error) comes from a server certificate rustls did not
/// trust.
pub(crate) fn is_untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let rustls_err = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(
            rustls_err,
            Some(rustls::Error::InvalidCertificate(_))
                | Some(rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        // Some layers keep only the text of rustls's error.
        if err.source().is_none() && err.to_string().starts_with("invalid peer certificate") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_colons_and_case() {
        assert_eq!(normalize_fingerprint(" AB:cd:01 "), "abcd01");
    }

    #[tokio::test]
    async fn a_malformed_fingerprint_is_refused_before_connecting() {
        let err = fetch_pinned_ca("https://127.0.0.1:1", "abc")
            .await
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn bad_ca_pem_is_named() {
        let err = client_config(Some("not a pem"))
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("CA certificate"), "{err}");
    }
}
