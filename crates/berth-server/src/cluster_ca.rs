//! The cluster's own certificate authority (`DATA/ca/`), made at first start:
//! it signs the certificates of the agents' tunnels (and of the API).

use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "{path}: {detail}; move the damaged file away to make a new CA (agents then need a new join)"
    )]
    File { path: String, detail: String },
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
}

pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct ClusterCa {
    cert_pem: String,
    key: rcgen::KeyPair,
    fingerprint: String,
}

fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth cluster CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    params
}

impl ClusterCa {
    pub fn load_or_create(data_dir: &Path) -> Result<ClusterCa, CaError> {
        let dir = data_dir.join("ca");
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let file_err = |path: &PathBuf, detail: String| CaError::File {
            path: path.display().to_string(),
            detail,
        };
        if !key_path.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e.to_string()))?;
            let key = rcgen::KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            berth_store::seal::write_private(&key_path, key.serialize_pem().as_bytes())
                .map_err(|e| file_err(&key_path, e.to_string()))?;
            std::fs::write(&cert_path, cert.pem())
                .map_err(|e| file_err(&cert_path, e.to_string()))?;
        }
        let key_pem =
            std::fs::read_to_string(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
        let key =
            rcgen::KeyPair::from_pem(&key_pem).map_err(|e| file_err(&key_path, e.to_string()))?;
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(|e| file_err(&cert_path, e.to_string()))?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .map_err(|e| file_err(&cert_path, e.to_string()))?;
        let fingerprint = hex::encode(sha2::Sha256::digest(&der));
        Ok(ClusterCa {
            cert_pem,
            key,
            fingerprint,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    pub fn issue(&self, common_name: &str, names: &[String]) -> Result<IssuedCert, CaError> {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        for name in names {
            params
                .subject_alt_names
                .push(match name.parse::<std::net::IpAddr>() {
                    Ok(ip) => rcgen::SanType::IpAddress(ip),
                    Err(_) => rcgen::SanType::DnsName(name.clone().try_into()?),
                });
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
