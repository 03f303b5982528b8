//! TLS certificate calls (admin only on the server).

use crate::{Client, Error};
use berth_api::{CertInfo, GenerateCert, ImportCert};

impl Client {
    /// `GET /certs`
    pub async fn certs(&self) -> Result<Vec<CertInfo>, Error> {
        self.get_json(&["certs"]).await
    }

    /// `POST /certs`
    pub async fn import_cert(&self, cert_pem: String, key_pem: String) -> Result<CertInfo, Error> {
        let body = ImportCert { cert_pem, key_pem };
        self.post_json(&["certs"], Some(&body)).await
    }

    /// `POST /certs/generate`
    pub async fn generate_cert(&self, domains: Vec<String>) -> Result<CertInfo, Error> {
        let body = GenerateCert { domains };
        self.post_json(&["certs", "generate"], Some(&body)).await
    }

    /// `POST /certs/{id}/default`
    pub async fn default_cert(&self, id: &str) -> Result<CertInfo, Error> {
        self.post_json::<(), _>(&["certs", id, "default"], None)
            .await
    }

    /// `DELETE /certs/{id}`
    pub async fn delete_cert(&self, id: &str) -> Result<(), Error> {
        self.delete(&["certs", id]).await
    }
}
