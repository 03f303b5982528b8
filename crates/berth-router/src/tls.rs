//! HTTPS: rustls with the ring provider (chosen explicitly: aws-lc-rs needs cmake and
//! nasm to build), certificates picked by SNI (exact name, then `*.parent`; a
//! client that sends no SNI, connecting by address, gets the default one, as
//! nginx and haproxy serve theirs), HTTP/2 and HTTP/1.1 offered by ALPN.
//! An OCSP response the server fetched for a certificate is stapled to its
//! handshakes as it is: the router makes no outbound request of its own.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::headers::canonical_name;

/// A certificate as the server sends it to the router: the domains it serves (exact
/// names or `*.example.com`), the PEM chain and the PEM private key.
#[derive(Clone, Serialize, Deserialize)]
pub struct TlsCert {
    pub domains: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
    /// Served to clients that name no server (no SNI: they connect by address).
    #[serde(default)]
    pub default: bool,
    /// A DER OCSP response saying the certificate is good, stapled to every
    /// handshake that asks for one (base64 on the wire). The server fetched and
    /// checked it; a router from before stapling ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_der")]
    pub ocsp: Option<Vec<u8>>,
}

mod base64_der {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(der: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match der {
            Some(der) => s.serialize_str(&STANDARD.encode(der)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl std::fmt::Debug for TlsCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsCert")
            .field("domains", &self.domains)
            .field("ocsp", &self.ocsp.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// ring's suites, AES-128-GCM first: what Mozilla's guidelines and Go's TLS put first
/// where the CPU has AES instructions. The SHA-384 of the AES-256 suites (ring's
/// default first) has no fast path in ring on some CPUs (AMD EPYC here): with it a
/// resumed handshake cost the router about a quarter more CPU (BENCHMARKS.md). The
/// server's order decides (see [`server_config`]; the API's listener uses it too).
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// Parses a PEM chain and key into what rustls serves.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the key is not a valid PEM private key: {e}"))?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let ck = CertifiedKey::new(chain, key);
    ck.keys_match()
        .map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    Ok(ck)
}

/// Domain → certificate, swapped as a whole, and the one for clients that
/// send no SNI.
#[derive(Debug, Default)]
pub struct CertStore {
    by_name: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    default: ArcSwap<Option<Arc<CertifiedKey>>>,
}

impl CertStore {
    /// Replaces every certificate; unusable ones are skipped with a warning.
    pub fn update(&self, certs: &[TlsCert]) {
        let mut by_name = HashMap::new();
        let mut default = None;
        for cert in certs {
            match certified_key(&cert.cert_pem, &cert.key_pem) {
                Ok(mut ck) => {
                    ck.ocsp = cert.ocsp.clone();
                    let ck = Arc::new(ck);
                    for d in &cert.domains {
                        by_name.insert(canonical_name(d), ck.clone());
                    }
                    if cert.default {
                        default = Some(ck);
                    }
                }
                Err(e) => tracing::warn!(domains = ?cert.domains, "certificate skipped: {e}"),
            }
        }
        self.by_name.store(Arc::new(by_name));
        self.default.store(Arc::new(default));
    }

    /// The certificate for a client that names no server.
    pub fn default_cert(&self) -> Option<Arc<CertifiedKey>> {
        Option::clone(&self.default.load())
    }

    /// The certificate for `name`: exact, else the wildcard one level up.
    pub fn lookup(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = canonical_name(name);
        let map = self.by_name.load();
        if let Some(ck) = map.get(&name) {
            return Some(ck.clone());
        }
        map.get(&wildcard_above(&name)?).cloned()
    }
}

/// The wildcard name that also serves `name` (lower-case, no trailing dot):
/// `*.b.c` for `a.b.c`. Wildcards cover exactly one level, as in browsers.
pub fn wildcard_above(name: &str) -> Option<String> {
    let (_, parent) = name.split_once('.')?;
    Some(format!("*.{parent}"))
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) => self.lookup(name),
            None => self.default_cert(),
        }
    }
}

/// The rustls config of the HTTPS listener.
pub fn server_config(certs: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order of cipher suites (rustls: AEADs only, strongest first)
    // decides, not the client's: testssl.sh rates a server without one NOT ok.
    config.ignore_client_order = true;
    // Stateless session tickets (keys rotated every 6 hours): a returning client
    // resumes without the certificate's signature, and the router keeps no state for
    // it, so any number can (the default in-memory store keeps 256 sessions).
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert!(certified_key("nope", "nope").is_err());
    }

    #[test]
    fn offers_every_suite_of_ring_with_aes_128_first() {
        let ours = provider().cipher_suites.clone();
        let mut theirs = rustls::crypto::ring::default_provider().cipher_suites;
        assert_eq!(
            ours[0],
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        );
        let mut sorted = ours.clone();
        let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        sorted.sort_by_key(name);
        theirs.sort_by_key(name);
        assert_eq!(sorted, theirs);
    }

    #[test]
    fn empty_store_has_nothing() {
        let store = CertStore::default();
        assert!(store.lookup("a.example").is_none());
        assert!(store.lookup("example").is_none());
    }
}
