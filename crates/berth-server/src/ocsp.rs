//! OCSP stapling. A certificate whose authority information access names an
//! OCSP responder (`http://`, as ACME certificates do) gets the responder's
//! answer fetched here, in the background: when the certificate is stored or
//! the server starts, again halfway through the answer's validity, and after a
//! failure with back-off. An answer is kept only when it is for this
//! certificate, signed by its issuer (or by a responder certificate the issuer
//! signed for OCSP), says `good` and is current; it is stored next to the
//! certificate (`cert_ocsp`) and `certs::push_to_router` sends it with the
//! certificate, so every node's router staples it and no router makes a
//! request of its own. Handshakes never wait on any of this.
//!
//! An answer that says the certificate is revoked (or unknown) is not stapled,
//! and the one stapled before is dropped at once; an unreachable responder
//! leaves the last good answer stapled until it expires. Certificates without
//! an OCSP responder are served as before.
//!
//! Requests and responses are RFC 6960 DER through RustCrypto's `x509-ocsp`;
//! signatures are checked with ring (ECDSA P-256/P-384, RSA PKCS#1 with
//! SHA-2, Ed25519).

use crate::rack::Rack;
use crate::rack::metrics::Outcome;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ring::signature::{self as sig, VerificationAlgorithm};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use x509_cert::Certificate;
use x509_cert::der::asn1::{GeneralizedTime, Null, ObjectIdentifier, OctetString};
use x509_cert::der::oid::db::{rfc5280, rfc5912, rfc6960, rfc8410};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, ExtendedKeyUsage};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus,
    ResponderId, TbsRequest,
};

/// How long the responder may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer taken (Let's Encrypt's are under 1 KiB).
const MAX_RESPONSE: usize = 64 * 1024;
/// How far ahead of this machine's clock an answer's `thisUpdate` may be.
const CLOCK_SKEW: i64 = 5 * 60;
/// How long an answer without `nextUpdate` is stapled.
const LIFE_WITHOUT_NEXT_UPDATE: i64 = 3600;
/// Refreshes come no sooner than this after the last one, however short an
/// answer's life.
const MIN_REFRESH: i64 = 60;
/// How often the certificates are looked at when nothing else happens.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// First retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Certificate changes come with route table pushes in bursts; wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// What to ask a responder about one certificate.
#[derive(Debug)]
pub struct Target {
    /// The responder's URL, from the certificate.
    pub url: String,
    cert_id: CertId,
    issuer: Certificate,
}

/// A checked answer that says the certificate is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staple {
    /// The responder's answer as it came (what the router staples).
    pub der: Vec<u8>,
    /// Unix seconds: when the responder made the answer, and its end.
    pub this_update: i64,
    pub good_until: i64,
}

impl Staple {
    /// When to fetch the next answer: halfway through this one's life, and not
    /// before [`MIN_REFRESH`] from `now`.
    pub fn refresh_at(&self, now: i64) -> i64 {
        let halfway = self.this_update + (self.good_until - self.this_update) / 2;
        halfway.max(now + MIN_REFRESH)
    }
}

/// Why an answer was not stapled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The responder says the certificate is revoked or unknown: what was
    /// stapled before goes too.
    #[error("{0}")]
    NotGood(String),
    /// No usable answer (unreachable, malformed, badly signed, stale): the last
    /// good one stays until it expires.
    #[error("{0}")]
    Unusable(String),
}

fn unusable(why: impl std::fmt::Display) -> Refused {
    Refused::Unusable(why.to_string())
}

fn sha1(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn unix(t: GeneralizedTime) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

impl Target {
    /// What to ask about the first certificate of a PEM chain; `None` when it
    /// names no `http://` OCSP responder. The issuer must be the chain's second
    /// certificate.
    pub fn of(chain_pem: &str) -> Result<Option<Target>, String> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the chain is not valid PEM: {e}"))?;
        let parse = |der: &CertificateDer<'_>| {
            Certificate::from_der(der).map_err(|e| format!("a certificate is not valid X.509: {e}"))
        };
        let leaf = parse(chain.first().ok_or("the chain holds no certificate")?)?;
        let Some(url) = responder_url(&leaf)? else {
            return Ok(None);
        };
        let issuer = parse(chain.get(1).ok_or(
            "the chain holds the certificate alone, and OCSP needs its issuer: import the full chain (the certificate, then its intermediates)",
        )?)?;
        if leaf.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            return Err(
                "the chain's second certificate did not issue the first: import the chain in order (the certificate, then its intermediates)".into(),
            );
        }
        let issuer_name = issuer
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| format!("the issuer's name cannot be encoded: {e}"))?;
        let hash = |data: &[u8]| {
            OctetString::new(sha1(data)).map_err(|e| format!("cannot make the OCSP request: {e}"))
        };
        let cert_id = CertId {
            // SHA-1, as RFC 5019 has responders expect; it only names the issuer.
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::ID_SHA_1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: hash(&issuer_name)?,
            issuer_key_hash: hash(issuer_key(&issuer))?,
            serial_number: leaf.tbs_certificate.serial_number.clone(),
        };
        Ok(Some(Target {
            url,
            cert_id,
            issuer,
        }))
    }

    /// The DER OCSP request (one certificate, unsigned, no nonce, so a
    /// responder may answer from its cache).
    pub fn request(&self) -> Result<Vec<u8>, String> {
        OcspRequest {
            tbs_request: TbsRequest {
                request_list: vec![x509_ocsp::Request {
                    req_cert: self.cert_id.clone(),
                    single_request_extensions: None,
                }],
                ..TbsRequest::default()
            },
            optional_signature: None,
        }
        .to_der()
        .map_err(|e| format!("cannot encode the OCSP request: {e}"))
    }

    /// Checks a responder's answer at `now` (Unix seconds).
    pub fn check(&self, response: &[u8], now: i64) -> Result<Staple, Refused> {
        let parsed = OcspResponse::from_der(response)
            .map_err(|e| unusable(format!("the answer is not an OCSP response: {e}")))?;
        if parsed.response_status != OcspResponseStatus::Successful {
            return Err(unusable(format!(
                "the responder answered {:?}",
                parsed.response_status
            )));
        }
        let bytes = parsed
            .response_bytes
            .ok_or_else(|| unusable("the responder's answer holds no response"))?;
        if bytes.response_type != rfc6960::ID_PKIX_OCSP_BASIC {
            return Err(unusable(format!(
                "the answer is of type {}, not a basic OCSP response",
                bytes.response_type
            )));
        }
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
            .map_err(|e| unusable(format!("the basic OCSP response is malformed: {e}")))?;
        let signer = self.signer_key(&basic, now).map_err(unusable)?;
        let signed = basic
            .tbs_response_data
            .to_der()
            .map_err(|e| unusable(format!("the response cannot be encoded again: {e}")))?;
        verify(
            &signer,
            &basic.signature_algorithm,
            &signed,
            basic.signature.raw_bytes(),
        )
        .map_err(|why| unusable(format!("the response's signature: {why}")))?;
        let single = basic
            .tbs_response_data
            .responses
            .iter()
            .find(|r| same_certificate(&r.cert_id, &self.cert_id))
            .ok_or_else(|| unusable("the response is about another certificate"))?;
        match &single.cert_status {
            CertStatus::Good(_) => {}
            CertStatus::Revoked(info) => {
                return Err(Refused::NotGood(format!(
                    "the responder says the certificate is REVOKED (since {})",
                    crate::certs::rfc3339(unix(info.revocation_time.0))
                )));
            }
            CertStatus::Unknown(_) => {
                return Err(Refused::NotGood(
                    "the responder does not know the certificate".into(),
                ));
            }
        }
        let this_update = unix(single.this_update.0);
        if this_update > now + CLOCK_SKEW {
            return Err(unusable(format!(
                "the response is dated {}, ahead of this machine's clock; check the clock",
                crate::certs::rfc3339(this_update)
            )));
        }
        let good_until = match single.next_update {
            Some(t) => unix(t.0),
            None => this_update + LIFE_WITHOUT_NEXT_UPDATE,
        };
        if good_until <= now {
            return Err(unusable(format!(
                "the response expired at {}",
                crate::certs::rfc3339(good_until)
            )));
        }
        Ok(Staple {
            der: response.to_vec(),
            this_update,
            good_until,
        })
    }

    /// The key the response must be signed with: the issuer's, or that of a
    /// responder certificate in the response which the issuer signed for OCSP
    /// (RFC 6960 4.2.2.2).
    fn signer_key(
        &self,
        basic: &BasicOcspResponse,
        now: i64,
    ) -> Result<SubjectPublicKeyInfoOwned, String> {
        let responder = &basic.tbs_response_data.responder_id;
        let issuer_spki = &self.issuer.tbs_certificate.subject_public_key_info;
        if names(responder, &self.issuer) {
            return Ok(issuer_spki.clone());
        }
        let delegate = basic
            .certs
            .iter()
            .flatten()
            .find(|c| names(responder, c))
            .ok_or("it is signed by a responder that is not the issuer and whose certificate it does not carry")?;
        let tbs = &delegate.tbs_certificate;
        if tbs.issuer != self.issuer.tbs_certificate.subject {
            return Err("the responder's certificate is not from the certificate's issuer".into());
        }
        let delegate_tbs = tbs
            .to_der()
            .map_err(|e| format!("the responder's certificate cannot be encoded: {e}"))?;
        verify(
            issuer_spki,
            &delegate.signature_algorithm,
            &delegate_tbs,
            delegate.signature.raw_bytes(),
        )
        .map_err(|why| format!("the responder's certificate: {why}"))?;
        let for_ocsp = matches!(
            tbs.get::<ExtendedKeyUsage>(),
            Ok(Some((_, eku))) if eku.0.contains(&rfc5280::ID_KP_OCSP_SIGNING)
        );
        if !for_ocsp {
            return Err("the responder's certificate is not marked for OCSP signing".into());
        }
        let validity = &tbs.validity;
        let seconds = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        if now < seconds(validity.not_before) || now > seconds(validity.not_after) {
            return Err("the responder's certificate is not valid now".into());
        }
        Ok(tbs.subject_public_key_info.clone())
    }
}

/// The issuer's public key as OCSP hashes it: the bits of the key, not the
/// whole SubjectPublicKeyInfo.
fn issuer_key(cert: &Certificate) -> &[u8] {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
}

fn names(responder: &ResponderId, cert: &Certificate) -> bool {
    match responder {
        ResponderId::ByName(name) => *name == cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => hash.as_bytes() == sha1(issuer_key(cert)).as_slice(),
    }
}

/// Responders echo the request's CertID, but may drop or add the hash
/// algorithm's NULL parameters.
fn same_certificate(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// The `http://` OCSP responder a certificate names, if any.
fn responder_url(cert: &Certificate) -> Result<Option<String>, String> {
    let aia = cert
        .tbs_certificate
        .get::<AuthorityInfoAccessSyntax>()
        .map_err(|e| format!("the certificate's authority information access is malformed: {e}"))?;
    let Some((_, aia)) = aia else {
        return Ok(None);
    };
    Ok(aia
        .0
        .iter()
        .filter(|d| d.access_method == rfc5280::ID_AD_OCSP)
        .find_map(|d| match &d.access_location {
            GeneralName::UniformResourceIdentifier(uri) if uri.as_str().starts_with("http://") => {
                Some(uri.as_str().to_string())
            }
            _ => None,
        }))
}

/// Checks `signature` over `message` with `key`, for the algorithms CAs and
/// responders use.
fn verify(
    key: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let ec = key.algorithm.oid == rfc5912::ID_EC_PUBLIC_KEY;
    let rsa = key.algorithm.oid == rfc5912::RSA_ENCRYPTION;
    let p256 = ec && curve == Some(rfc5912::SECP_256_R_1);
    let p384 = ec && curve == Some(rfc5912::SECP_384_R_1);
    let sig_oid = algorithm.oid;
    let chosen: &'static dyn VerificationAlgorithm =
        if p256 && sig_oid == rfc5912::ECDSA_WITH_SHA_256 {
            &sig::ECDSA_P256_SHA256_ASN1
        } else if p256 && sig_oid == rfc5912::ECDSA_WITH_SHA_384 {
            &sig::ECDSA_P256_SHA384_ASN1
        } else if p384 && sig_oid == rfc5912::ECDSA_WITH_SHA_256 {
            &sig::ECDSA_P384_SHA256_ASN1
        } else if p384 && sig_oid == rfc5912::ECDSA_WITH_SHA_384 {
            &sig::ECDSA_P384_SHA384_ASN1
        } else if rsa && sig_oid == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
            &sig::RSA_PKCS1_2048_8192_SHA256
        } else if rsa && sig_oid == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
            &sig::RSA_PKCS1_2048_8192_SHA384
        } else if rsa && sig_oid == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
            &sig::RSA_PKCS1_2048_8192_SHA512
        } else if key.algorithm.oid == rfc8410::ID_ED_25519 && sig_oid == rfc8410::ID_ED_25519 {
            &sig::ED25519
        } else {
            return Err(format!(
                "signature algorithm {sig_oid} with key type {} is not one berth checks",
                key.algorithm.oid
            ));
        };
    sig::UnparsedPublicKey::new(chosen, key.subject_public_key.raw_bytes())
        .verify(message, signature)
        .map_err(|_| "the signature does not verify".to_string())
}

/// POSTs the request to the responder; the answer's body.
async fn fetch(url: &str, request: Vec<u8>) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("the responder URL {url} is not valid: {e}"))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
        .header(hyper::header::ACCEPT, "application/ocsp-response")
        .body(Full::new(Bytes::from(request)))
        .map_err(|e| format!("cannot make the request to {url}: {e}"))?;
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("cannot reach the OCSP responder {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the OCSP responder {url} answered HTTP {}",
                resp.status()
            ));
        }
        Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map(|body| body.to_bytes().to_vec())
            .map_err(|e| {
                format!("cannot read the answer of {url} (at most {MAX_RESPONSE} bytes): {e}")
            })
    };
    tokio::time::timeout(FETCH_TIMEOUT, answer)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the OCSP responder {url} did not answer within {FETCH_TIMEOUT:?}"
            ))
        })
}

/// Fetches and checks a fresh answer for `target`.
async fn refresh(target: &Target, now: i64) -> Result<Staple, Refused> {
    let request = target.request().map_err(unusable)?;
    let answer = fetch(&target.url, request).await.map_err(unusable)?;
    target.check(&answer, now)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The moment `at` (Unix seconds) on the monotonic clock.
fn instant_at(at: i64, now: i64) -> Instant {
    Instant::now() + Duration::from_secs(u64::try_from(at - now).unwrap_or(0))
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// What is known of one stored certificate.
struct Watched {
    /// `None`: no responder to ask (or a chain OCSP cannot use, logged once).
    target: Option<Target>,
    next: Instant,
    failures: u32,
}

/// Keeps a current OCSP answer on every certificate that names a responder,
/// until the server stops.
pub async fn run(rack: Arc<Rack>) {
    let mut changes = rack.router.subscribe();
    let mut watched: HashMap<String, Watched> = HashMap::new();
    loop {
        let _ = changes.borrow_and_update();
        let wake = pass(&rack, &mut watched).await;
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One look at every certificate: fetches what is due, drops what expired,
/// pushes the certificates again when a staple changed. Returns when to look
/// again.
async fn pass(rack: &Rack, watched: &mut HashMap<String, Watched>) -> Instant {
    let mut wake = Instant::now() + CHECK_EVERY;
    let certs = match rack.store.certs() {
        Ok(certs) => certs,
        Err(e) => {
            tracing::warn!(error = %e, "OCSP: cannot read the stored certificates");
            return wake;
        }
    };
    let mut staples = match rack.store.ocsp_staples() {
        Ok(staples) => staples,
        Err(e) => {
            tracing::warn!(error = %e, "OCSP: cannot read the stored responses");
            return wake;
        }
    };
    watched.retain(|id, _| certs.iter().any(|(row, _)| row.id == *id));
    let mut changed = false;
    for (row, _) in &certs {
        let domains = row.domains.join(", ");
        let now = unix_now();
        let entry = watched.entry(row.id.clone()).or_insert_with(|| {
            let target = Target::of(&row.cert_pem).unwrap_or_else(|why| {
                tracing::warn!(cert = %row.id, %domains, "no OCSP stapling: {why}");
                None
            });
            // An answer kept from before a restart stands until its own
            // refresh time.
            let next = match (&target, staples.get(&row.id)) {
                (Some(target), Some((der, _))) => target.check(der, now).map_or_else(
                    |_| Instant::now(),
                    |kept| instant_at(kept.refresh_at(now), now),
                ),
                _ => Instant::now(),
            };
            Watched {
                target,
                next,
                failures: 0,
            }
        });
        let Some(target) = &entry.target else {
            continue;
        };
        if entry.next <= Instant::now() {
            match refresh(target, now).await {
                Ok(staple) => {
                    rack.metrics.ocsp_refresh(Outcome::Succeeded);
                    if let Err(e) =
                        rack.store
                            .put_ocsp_staple(&row.id, &staple.der, staple.good_until)
                    {
                        tracing::warn!(cert = %row.id, error = %e, "OCSP: cannot store the response");
                    }
                    tracing::info!(
                        cert = %row.id, %domains, responder = %target.url,
                        good_until = %crate::certs::rfc3339(staple.good_until),
                        "OCSP response stapled"
                    );
                    entry.failures = 0;
                    entry.next = instant_at(staple.refresh_at(now), now);
                    staples.insert(row.id.clone(), (staple.der, staple.good_until));
                    changed = true;
                }
                Err(refused) => {
                    rack.metrics.ocsp_refresh(Outcome::Failed);
                    entry.failures += 1;
                    let wait = backoff(entry.failures);
                    entry.next = Instant::now() + wait;
                    let kept = match &refused {
                        Refused::NotGood(_) => {
                            if staples.remove(&row.id).is_some() {
                                changed = true;
                            }
                            if let Err(e) = rack.store.delete_ocsp_staple(&row.id) {
                                tracing::warn!(cert = %row.id, error = %e, "OCSP: cannot drop the response");
                            }
                            "no response is stapled"
                        }
                        Refused::Unusable(_) if staples.contains_key(&row.id) => {
                            "the last good response stays stapled until it expires"
                        }
                        Refused::Unusable(_) => "no response is stapled",
                    };
                    tracing::warn!(
                        cert = %row.id, %domains, responder = %target.url, failures = entry.failures,
                        "OCSP refresh failed: {refused}; {kept}; next try in {}s",
                        wait.as_secs()
                    );
                }
            }
        }
        wake = wake.min(entry.next);
    }
    // Answers past their end are stapled no more.
    let now = unix_now();
    for (id, (_, good_until)) in &staples {
        if *good_until <= now {
            if let Err(e) = rack.store.delete_ocsp_staple(id) {
                tracing::warn!(cert = %id, error = %e, "OCSP: cannot drop the expired response");
            }
            tracing::warn!(cert = %id, "OCSP response expired; the certificate is served without one");
            changed = true;
        } else {
            wake = wake.min(instant_at(*good_until, now));
        }
    }
    if changed {
        crate::certs::push_to_router(rack);
    }
    wake
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_halfway_and_not_in_a_burst() {
        let staple = Staple {
            der: vec![],
            this_update: 1_000,
            good_until: 1_000 + 7 * 86_400,
        };
        assert_eq!(staple.refresh_at(1_000), 1_000 + 7 * 86_400 / 2);
        // Past halfway (a server that was down): soon, not at once.
        assert_eq!(staple.refresh_at(500_000), 500_000 + MIN_REFRESH);
    }

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn certificates_without_a_responder_are_left_alone() -> Result<(), Box<dyn std::error::Error>> {
        let (cert, _) = crate::certs::self_signed(&["a.example".to_string()])?;
        assert!(Target::of(&cert)?.is_none());
        Ok(())
    }

    /// A test CA.
    struct Ca {
        params: rcgen::CertificateParams,
        key: rcgen::KeyPair,
        cert: rcgen::Certificate,
    }

    impl Ca {
        fn new() -> Result<Ca, rcgen::Error> {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "berth test CA");
            let cert = params.self_signed(&key)?;
            Ok(Ca { params, key, cert })
        }

        /// A certificate this CA signed, and its key.
        fn issue(
            &self,
            params: rcgen::CertificateParams,
        ) -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
            let key = rcgen::KeyPair::generate()?;
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            Ok((params.signed_by(&key, &issuer)?, key))
        }
    }

    /// A CA, and a chain whose leaf names `http://127.0.0.1:9/ocsp` as its
    /// responder.
    fn issued() -> Result<(String, Ca), rcgen::Error> {
        let ca = Ca::new()?;
        let mut leaf_params = rcgen::CertificateParams::new(vec!["a.example".to_string()])?;
        leaf_params.serial_number = Some(rcgen::SerialNumber::from(vec![0x10, 0x01]));
        leaf_params.custom_extensions = vec![aia_ocsp("http://127.0.0.1:9/ocsp")];
        let (leaf, _) = ca.issue(leaf_params)?;
        Ok((format!("{}{}", leaf.pem(), ca.cert.pem()), ca))
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const NOW: i64 = 1_800_000_000;

    fn at(t: i64) -> Result<x509_ocsp::OcspGeneralizedTime, x509_cert::der::Error> {
        let unix = Duration::from_secs(u64::try_from(t).unwrap_or(0));
        Ok(x509_ocsp::OcspGeneralizedTime(
            GeneralizedTime::from_unix_duration(unix)?,
        ))
    }

    /// A basic OCSP response about `target`'s certificate, signed with `key`.
    fn answer(
        target: &Target,
        status: CertStatus,
        next_update: Option<i64>,
        key: &rcgen::KeyPair,
        responder: ResponderId,
        certs: Option<Vec<Certificate>>,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        use rcgen::SigningKey;
        use x509_cert::der::asn1::BitString;
        use x509_ocsp::{ResponseData, SingleResponse};
        let tbs = ResponseData {
            version: x509_ocsp::Version::V1,
            responder_id: responder,
            produced_at: at(NOW - 60)?,
            responses: vec![SingleResponse {
                cert_id: target.cert_id.clone(),
                cert_status: status,
                this_update: at(NOW - 60)?,
                next_update: next_update.map(at).transpose()?,
                single_extensions: None,
            }],
            response_extensions: None,
        };
        let signature = key.sign(&tbs.to_der()?)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            signature: BitString::from_bytes(&signature)?,
            certs,
        };
        Ok(OcspResponse::successful(basic)?.to_der()?)
    }

    fn by_name(cert: &rcgen::Certificate) -> Result<ResponderId, x509_cert::der::Error> {
        Ok(ResponderId::ByName(
            Certificate::from_der(cert.der())?.tbs_certificate.subject,
        ))
    }

    #[test]
    fn answers_from_the_issuer_are_checked() -> TestResult {
        let (chain, ca) = issued()?;
        let target = Target::of(&chain)?.ok_or("the responder was not found")?;
        let day = Some(NOW + 86_400);
        let signed = |status, next, key: &rcgen::KeyPair| {
            answer(&target, status, next, key, by_name(&ca.cert)?, None)
        };
        let good = signed(CertStatus::good(), day, &ca.key)?;
        let staple = target.check(&good, NOW)?;
        assert_eq!(staple.der, good);
        assert_eq!(staple.good_until, NOW + 86_400);
        // Past its end: unusable.
        assert!(matches!(
            target.check(&good, NOW + 86_400),
            Err(Refused::Unusable(_))
        ));
        // The responder named by its key hash, as Let's Encrypt's are.
        let ca_cert = Certificate::from_der(ca.cert.der())?;
        let by_key = ResponderId::ByKey(OctetString::new(sha1(issuer_key(&ca_cert)))?);
        let good = answer(&target, CertStatus::good(), day, &ca.key, by_key, None)?;
        assert!(target.check(&good, NOW).is_ok());
        // Without nextUpdate: good for an hour.
        let open = signed(CertStatus::good(), None, &ca.key)?;
        assert_eq!(
            target.check(&open, NOW)?.good_until,
            NOW - 60 + LIFE_WITHOUT_NEXT_UPDATE
        );
        // Revoked and unknown are not good: the staple goes.
        let revoked = x509_ocsp::RevokedInfo {
            revocation_time: at(NOW - 3600)?,
            revocation_reason: None,
        };
        for status in [CertStatus::revoked(revoked), CertStatus::unknown()] {
            let bad = signed(status, day, &ca.key)?;
            assert!(matches!(target.check(&bad, NOW), Err(Refused::NotGood(_))));
        }
        // Signed by a key that is not the issuer's.
        let forged = signed(CertStatus::good(), day, &rcgen::KeyPair::generate()?)?;
        let err = target
            .check(&forged, NOW)
            .expect_err("a forged answer was stapled");
        assert!(err.to_string().contains("signature"), "{err}");
        // About another certificate of the same CA.
        let mut other = Target::of(&chain)?.ok_or("the responder was not found")?;
        other.cert_id.serial_number = x509_cert::serial_number::SerialNumber::new(&[0x20])?;
        let elsewhere = answer(
            &other,
            CertStatus::good(),
            day,
            &ca.key,
            by_name(&ca.cert)?,
            None,
        )?;
        let err = target
            .check(&elsewhere, NOW)
            .expect_err("another certificate's answer was stapled");
        assert!(err.to_string().contains("another certificate"), "{err}");
        Ok(())
    }

    #[test]
    fn a_delegated_responder_needs_the_issuers_signature_and_ocsp_signing() -> TestResult {
        let (chain, ca) = issued()?;
        let target = Target::of(&chain)?.ok_or("the responder was not found")?;
        let responder = |eku: Vec<rcgen::ExtendedKeyUsagePurpose>, signer: &Ca| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "berth test responder");
            params.extended_key_usages = eku;
            signer.issue(params)
        };
        let check = |cert: &rcgen::Certificate, key: &rcgen::KeyPair| {
            let der = answer(
                &target,
                CertStatus::good(),
                Some(NOW + 86_400),
                key,
                by_name(cert)?,
                Some(vec![Certificate::from_der(cert.der())?]),
            )?;
            Ok::<_, Box<dyn std::error::Error>>(target.check(&der, NOW))
        };
        let ocsp = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
        let (cert, key) = responder(ocsp.clone(), &ca)?;
        assert!(check(&cert, &key)?.is_ok());
        let (cert, key) = responder(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth], &ca)?;
        let err = check(&cert, &key)?.expect_err("a responder not for OCSP was trusted");
        assert!(err.to_string().contains("OCSP signing"), "{err}");
        // Another CA of the same name made this responder certificate.
        let (cert, key) = responder(ocsp, &Ca::new()?)?;
        let err = check(&cert, &key)?.expect_err("another CA's responder was trusted");
        assert!(err.to_string().contains("responder's certificate"), "{err}");
        Ok(())
    }

    /// authorityInfoAccess with one OCSP URI, DER by hand (rcgen has no
    /// builder for it).
    fn aia_ocsp(url: &str) -> rcgen::CustomExtension {
        let mut uri = vec![0x86, url.len() as u8];
        uri.extend_from_slice(url.as_bytes());
        let mut access = vec![0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
        access.extend(uri);
        let mut description = vec![0x30, access.len() as u8];
        description.extend(access);
        let mut syntax = vec![0x30, description.len() as u8];
        syntax.extend(description);
        rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], syntax)
    }

    #[test]
    fn the_request_names_the_certificate_by_its_issuer() -> TestResult {
        let (chain, ca) = issued()?;
        let target = Target::of(&chain)?.ok_or("the responder was not found")?;
        assert_eq!(target.url, "http://127.0.0.1:9/ocsp");
        let request = OcspRequest::from_der(&target.request()?)?;
        let id = &request.tbs_request.request_list[0].req_cert;
        assert_eq!(id.serial_number.as_bytes(), [0x10, 0x01]);
        let ca = Certificate::from_der(ca.cert.der())?;
        assert_eq!(id.issuer_key_hash.as_bytes(), sha1(issuer_key(&ca)));
        // The chain without its issuer: a clear refusal, not a guess.
        let leaf_only = chain
            .split_inclusive("-----END CERTIFICATE-----")
            .next()
            .ok_or("no leaf")?;
        let err = Target::of(leaf_only).expect_err("a lone certificate was accepted");
        assert!(err.contains("full chain"), "{err}");
        Ok(())
    }

    #[test]
    fn garbage_and_failures_are_not_stapled() -> TestResult {
        let (chain, _) = issued()?;
        let target = Target::of(&chain)?.ok_or("the responder was not found")?;
        assert!(matches!(
            target.check(b"not DER", 0),
            Err(Refused::Unusable(_))
        ));
        let try_later = OcspResponse::try_later().to_der()?;
        let err = target
            .check(&try_later, 0)
            .expect_err("tryLater was stapled");
        assert!(err.to_string().contains("TryLater"), "{err}");
        Ok(())
    }
}
