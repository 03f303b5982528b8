//! API tokens (roles `admin`, `deploy`, `read`, optionally limited to one app)
//! and the audit trail of changes made with them.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::{AuditEntry, CreateToken, CreatedToken, TokenInfo};
use berth_store::StoreError;
use berth_store::access::{ROLES, TokenRow};

fn info(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        role: t.role.clone(),
        app: t.app.clone(),
        created: t.created.clone(),
        last_used: t.last_used.clone(),
    }
}

pub fn list(rack: &Rack) -> Result<Vec<TokenInfo>> {
    Ok(rack.store.tokens()?.iter().map(info).collect())
}

/// A new token; its secret is in the answer and nowhere else.
pub fn create(rack: &Rack, req: &CreateToken) -> Result<CreatedToken> {
    if !ROLES.contains(&req.role.as_str()) {
        return Err(Error::Invalid(format!(
            "unknown role {:?}; use admin, deploy or read",
            req.role.chars().take(64).collect::<String>()
        )));
    }
    if let Some(app) = &req.app {
        berth_core::validate_app_name(app)?;
        if req.role == "admin" {
            return Err(Error::Invalid(
                "an admin token covers every app; drop --app or use --role deploy".into(),
            ));
        }
        match rack.store.app(app) {
            Ok(_) => {}
            Err(StoreError::NoApp(_)) => {
                return Err(Error::NotFound(format!(
                    "app {app} does not exist, so no token can be limited to it; list the apps with `berth apps`, or create it first with `berth apps create {app}`"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (id, secret) = rack.store.create_token(&req.role, req.app.as_deref())?;
    let token = rack
        .store
        .tokens()?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| info(&t))
        .ok_or_else(|| StoreError::NoToken(id.clone()))?;
    tracing::info!(token = id, role = req.role, app = ?req.app, "token created");
    Ok(CreatedToken { token, secret })
}

/// Revokes a token; the last admin token cannot go.
pub fn revoke(rack: &Rack, id: &str) -> Result<()> {
    rack.store.revoke_token(id)?;
    tracing::info!(token = id, "token revoked");
    Ok(())
}

/// The newest `limit` audit records (1 to 10,000; default 100).
pub fn audit(rack: &Rack, limit: Option<u32>) -> Result<Vec<AuditEntry>> {
    let limit = limit.unwrap_or(100).clamp(1, 10_000);
    Ok(rack
        .store
        .audit(limit)?
        .into_iter()
        .map(|a| AuditEntry {
            time: a.time,
            token: a.token,
            role: a.role,
            method: a.method,
            path: a.path,
            status: a.status,
        })
        .collect())
}
