//! The cluster's own certificate authority: made at the first start in
//! `DATA/ca/` (`ca.pem`, `ca.key`), loaded afterwards. It issues the API's
//! certificate when the API is served over HTTPS and the certificates of a
//! swarm's agents; clients trust it by its SHA-256 fingerprint
//! (`berth login --ca-sha256`, `berth agent --ca-sha256`).

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Years the CA certificate is valid.
const CA_YEARS: i64 = 10;
/// Days an issued certificate is valid.
const ISSUED_DAYS: i64 = 365;
/// An issued certificate this close to its end is issued again at start.
const RENEW_BEFORE_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "cannot write the cluster CA's {}: {source}; check that the data dir is writable by this user",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the cluster CA's {}: {source}; check its owner and mode", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a valid cluster CA file ({reason}); restore it from a backup, or remove {} (both ca.pem and ca.key) to make a new CA, after which every agent and CLI must trust the new fingerprint",
        path.display(),
        dir.display()
    )]
    Corrupt {
        path: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    #[error(
        "the cluster CA in {} has ca.pem but not ca.key (or the other way round); restore the missing file, or remove both to make a new CA",
        dir.display()
    )]
    HalfThere { dir: PathBuf },
    #[error("cannot issue a certificate for {common_name:?}: {reason}")]
    Issue { common_name: String, reason: String },
}

/// A certificate issued by the cluster CA and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster's certificate authority (ECDSA P-256).
pub struct ClusterCa {
    pem: String,
    der: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The subject, key usages and key id method every cluster CA certificate has;
/// an issuer rebuilt from them signs certificates chaining to the stored one.
fn ca_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, CaError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CaError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The one certificate of a PEM text, as DER.
fn single_cert_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    match certs.next() {
        Some(Ok(der)) => Ok(der.as_ref().to_vec()),
        Some(Err(e)) => Err(format!("bad PEM: {e}")),
        None => Err("no CERTIFICATE block".into()),
    }
}

/// The common name of a DER certificate.
fn common_name_of(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !cert.is_ca() {
        return Err("the certificate is not a CA certificate".into());
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("the certificate has no common name")?;
    Ok(cn.to_string())
}

/// SHA-256 of `der`, lowercase hex without colons.
pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

impl ClusterCa {
    /// Loads `DATA/ca/ca.pem` and `ca.key`, or makes both (dir 0700, key 0600) when
    /// neither exists.
    pub fn load_or_create(data_dir: &Path) -> Result<ClusterCa, CaError> {
        let dir = data_dir.join("ca");
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        match (read_optional(&cert_path)?, read_optional(&key_path)?) {
            (Some(pem), Some(key)) => Self::load(&dir, pem, &key),
            (None, None) => Self::create(&dir),
            _ => Err(CaError::HalfThere { dir }),
        }
    }

    fn load(dir: &Path, pem: String, key: &str) -> Result<ClusterCa, CaError> {
        let corrupt = |file: &str, reason: String| CaError::Corrupt {
            path: dir.join(file),
            dir: dir.to_path_buf(),
            reason,
        };
        let der = single_cert_der(&pem).map_err(|r| corrupt("ca.pem", r))?;
        let cn = common_name_of(&der).map_err(|r| corrupt("ca.pem", r))?;
        let key = rcgen::KeyPair::from_pem(key).map_err(|e| corrupt("ca.key", e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| corrupt("ca.pem", e.to_string()))?;
        if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(corrupt(
                "ca.key",
                "the key does not belong to ca.pem's certificate".into(),
            ));
        }
        Ok(ClusterCa {
            pem,
            der,
            issuer: rcgen::Issuer::new(ca_params(&cn), key),
        })
    }

    fn create(dir: &Path) -> Result<ClusterCa, CaError> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(write_err(dir))?;
        }
        let issue_err = |e: rcgen::Error| CaError::Issue {
            common_name: "berth cluster CA".into(),
            reason: e.to_string(),
        };
        let cn = format!(
            "berth cluster CA {}",
            hex::encode(rand::random::<[u8; 4]>())
        );
        let mut params = ca_params(&cn);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365 * CA_YEARS + CA_YEARS / 4);
        let key = rcgen::KeyPair::generate().map_err(issue_err)?;
        let cert = params.self_signed(&key).map_err(issue_err)?;
        let pem = cert.pem();
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.pem");
        // The key first: a crash between the two leaves a key alone, which
        // `load_or_create` reports rather than silently making a second CA.
        berth_store::seal::write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(write_err(&key_path))?;
        berth_store::seal::write_private(&cert_path, pem.as_bytes())
            .map_err(write_err(&cert_path))?;
        Ok(ClusterCa {
            der: cert.der().as_ref().to_vec(),
            pem,
            issuer: rcgen::Issuer::new(ca_params(&cn), key),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.pem
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex without colons.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.der)
    }

    /// A certificate for `common_name` naming `names` (IP SANs for what parses as an
    /// IP address, DNS SANs for the rest), valid one year, for server and client auth.
    pub fn issue(&self, common_name: &str, names: &[String]) -> Result<IssuedCert, CaError> {
        let issue_err = |reason: String| CaError::Issue {
            common_name: common_name.to_string(),
            reason,
        };
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, common_name);
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(|e| issue_err(format!("{name:?} is not a DNS name ({e})")))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(ISSUED_DAYS);
        let key = rcgen::KeyPair::generate().map_err(|e| issue_err(e.to_string()))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| issue_err(e.to_string()))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate kept as `DATA/ca/<stem>.pem` and `<stem>.key`, issued again when
    /// missing, issued for other names or by another CA, or near its end.
    pub fn load_or_issue(
        &self,
        data_dir: &Path,
        stem: &str,
        common_name: &str,
        names: &[String],
    ) -> Result<IssuedCert, CaError> {
        let dir = data_dir.join("ca");
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        let names_path = dir.join(format!("{stem}.names"));
        let want = format!("{}\n{}\n", self.fingerprint(), names.join("\n"));
        if let (Some(cert_pem), Some(key_pem), Some(had)) = (
            read_optional(&cert_path)?,
            read_optional(&key_path)?,
            read_optional(&names_path)?,
        ) && had == want
            && still_fresh(&cert_pem)
        {
            return Ok(IssuedCert { cert_pem, key_pem });
        }
        let issued = self.issue(common_name, names)?;
        berth_store::seal::write_private(&key_path, issued.key_pem.as_bytes())
            .map_err(write_err(&key_path))?;
        berth_store::seal::write_private(&cert_path, issued.cert_pem.as_bytes())
            .map_err(write_err(&cert_path))?;
        berth_store::seal::write_private(&names_path, want.as_bytes())
            .map_err(write_err(&names_path))?;
        Ok(issued)
    }
}

/// Whether a PEM certificate parses and is valid for more than `RENEW_BEFORE_DAYS`.
fn still_fresh(cert_pem: &str) -> bool {
    let Ok(der) = single_cert_der(cert_pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let not_after = cert.validity().not_after.timestamp();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    not_after - now > RENEW_BEFORE_DAYS * 86_400
}

/// The names of this machine an API listening on `ip` should be reached by: the
/// hostname, then `ip` itself, or for a wildcard address every address of the
/// machine's interfaces (loopback included).
pub fn machine_names(ip: IpAddr) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = hostname() {
        names.push(host);
    }
    names.push("localhost".to_string());
    if ip.is_unspecified() {
        let mut ips = interface_addrs();
        for fallback in [
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ] {
            if !ips.contains(&fallback) {
                ips.push(fallback);
            }
        }
        names.extend(ips.iter().map(IpAddr::to_string));
    } else {
        names.push(ip.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The machine's host name, when it is a valid DNS name.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(name)
}

/// The IPv4 and IPv6 addresses of the machine's interfaces (link-local IPv6 left out:
/// it needs a zone to be reached).
fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6 addresses are sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if !ip.is_unicast_link_local() {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    let mut seen = std::collections::HashSet::new();
    out.retain(|ip| seen.insert(*ip));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{PrivateKeyDer, ServerName, UnixTime};

    fn verify(ca: &ClusterCa, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(
            single_cert_der(ca.ca_pem()).map_err(rustls::Error::General)?,
        ))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let leaf = CertificateDer::from(single_cert_der(cert_pem).map_err(rustls::Error::General)?);
        let server = ServerName::try_from(name.to_string())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier
            .verify_server_cert(&leaf, &[], &server, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn issued_certificates_chain_to_the_ca() -> Result<(), Box<dyn std::error::Error>> {
        let data = tempfile::tempdir()?;
        let ca = ClusterCa::load_or_create(data.path())?;
        let names = vec!["node-1.example".to_string(), "10.1.2.3".to_string()];
        let issued = ca.issue("node-1", &names)?;
        PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())?;
        verify(&ca, &issued.cert_pem, "node-1.example")?;
        verify(&ca, &issued.cert_pem, "10.1.2.3")?;
        assert!(verify(&ca, &issued.cert_pem, "other.example").is_err());
        assert!(verify(&ca, &issued.cert_pem, "10.1.2.4").is_err());

        // Loaded again: the same CA, whose issuer still signs chaining certificates.
        let again = ClusterCa::load_or_create(data.path())?;
        assert_eq!(again.fingerprint(), ca.fingerprint());
        assert_eq!(again.fingerprint().len(), 64);
        verify(
            &ca,
            &again.issue("n", &["10.9.9.9".into()])?.cert_pem,
            "10.9.9.9",
        )?;

        // Another CA's certificates do not chain to this one.
        let other_dir = tempfile::tempdir()?;
        let other = ClusterCa::load_or_create(other_dir.path())?;
        assert_ne!(other.fingerprint(), ca.fingerprint());
        let foreign = other.issue("x", &["node-1.example".into()])?;
        assert!(verify(&ca, &foreign.cert_pem, "node-1.example").is_err());
        Ok(())
    }

    #[test]
    fn files_are_private_and_corruption_is_named() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir()?;
        ClusterCa::load_or_create(data.path())?;
        let dir = data.path().join("ca");
        assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
        let key = dir.join("ca.key");
        assert_eq!(std::fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
        std::fs::write(dir.join("ca.pem"), "garbage")?;
        let msg = ClusterCa::load_or_create(data.path())
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("ca.pem") && msg.contains("remove"), "{msg}");
        std::fs::remove_file(dir.join("ca.pem"))?;
        let msg = ClusterCa::load_or_create(data.path())
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("ca.key"), "{msg}");
        Ok(())
    }

    #[test]
    fn kept_certificates_are_issued_again_when_the_names_change()
    -> Result<(), Box<dyn std::error::Error>> {
        let data = tempfile::tempdir()?;
        let ca = ClusterCa::load_or_create(data.path())?;
        let a = ca.load_or_issue(data.path(), "api", "api", &["10.0.0.1".into()])?;
        let b = ca.load_or_issue(data.path(), "api", "api", &["10.0.0.1".into()])?;
        assert_eq!(a.cert_pem, b.cert_pem);
        let c = ca.load_or_issue(data.path(), "api", "api", &["10.0.0.2".into()])?;
        assert_ne!(a.cert_pem, c.cert_pem);
        verify(&ca, &c.cert_pem, "10.0.0.2")?;
        Ok(())
    }

    #[test]
    fn wildcard_addresses_name_the_interfaces() {
        let names = machine_names("0.0.0.0".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert!(names.contains(&"127.0.0.1".to_string()), "{names:?}");
        assert!(names.contains(&"::1".to_string()), "{names:?}");
        let names = machine_names(IpAddr::from([10, 1, 2, 3]));
        assert!(names.contains(&"10.1.2.3".to_string()), "{names:?}");
        assert!(!names.contains(&"127.0.0.1".to_string()), "{names:?}");
    }
}
