//! Client apps: browser front ends that sign users in. Redirect URIs match exactly.

use std::sync::Arc;

use uuid::Uuid;

use crate::audit;
use crate::error::Error;
use crate::model::Caller;
use crate::model::{DisplayName, ServiceName};
use crate::store::{AppStore, ClientAppChange, ClientAppRow, RevokeScope, Store};
use crate::tokens::service::TokenService;

/// Checks redirect URIs: absolute `http`/`https`, no fragment, at most 20 of 2048 characters.
pub fn validate_redirect_uris(uris: &[String]) -> Result<Vec<String>, Error> {
    if uris.is_empty() || uris.len() > 20 {
        return Err(Error::invalid("redirect_uris", "give 1-20 redirect URIs"));
    }
    let mut out: Vec<String> = Vec::new();
    for uri in uris {
        let rest = uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?']).next().unwrap_or_default());
        let valid = uri.len() <= 2048
            && host.is_some_and(|h| !h.is_empty() && !h.contains(['@', ' ']))
            && !uri.contains('#')
            && crate::config::secure_or_loopback(uri);
        if !valid {
            // Names the URI by its start only: the input may be long.
            let shown: String = uri.chars().take(80).collect();
            let more = if shown.len() < uri.len() { "…" } else { "" };
            return Err(Error::invalid(
                "redirect_uris",
                format!(
                    "`{shown}{more}` must be an absolute https URL of at most 2048 characters \
                     without a fragment (http only on a loopback host)"
                ),
            ));
        }
        if !out.contains(uri) {
            out.push(uri.clone());
        }
    }
    Ok(out)
}

/// Checks the services a client app's sign-ins are for: at most 50 names, each of an existing
/// service app.
async fn validate_services(apps: &dyn AppStore, services: &[String]) -> Result<Vec<String>, Error> {
    if services.len() > 50 {
        return Err(Error::invalid("services", "at most 50 services"));
    }
    let mut out: Vec<String> = Vec::new();
    for service in services {
        ServiceName::parse(service).map_err(|_| {
            Error::invalid("services", format!("`{service}` is not a service name"))
        })?;
        if apps.service_app_by_name(service).await?.is_none() {
            return Err(Error::invalid(
                "services",
                format!("`{service}` is no service app's service name"),
            ));
        }
        if !out.contains(service) {
            out.push(service.clone());
        }
    }
    Ok(out)
}

fn json(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// What an update of a client app changes (`None` keeps a value).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAppUpdate<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New redirect URIs.
    pub redirect_uris: Option<&'a [String]>,
    /// New services.
    pub services: Option<&'a [String]>,
    /// New activity.
    pub is_active: Option<bool>,
    /// End every session signed in through the app.
    pub revoke_sessions: bool,
}

/// Client app management.
pub struct ClientApps {
    apps: Arc<dyn AppStore>,
    tokens: Arc<TokenService>,
}

impl ClientApps {
    /// Over `store`; `tokens` revokes sessions when an app is disabled.
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenService>) -> Self {
        Self {
            apps: store,
            tokens,
        }
    }

    /// Registers a client app.
    pub async fn create(
        &self,
        caller: &Caller,
        name: &str,
        redirect_uris: &[String],
        services: &[String],
    ) -> Result<ClientAppRow, Error> {
        let now = crate::model::now();
        let app = ClientAppRow {
            id: Uuid::new_v4(),
            name: DisplayName::parse(name)?.into_string(),
            redirect_uris: json(&validate_redirect_uris(redirect_uris)?),
            services: json(&validate_services(self.apps.as_ref(), services).await?),
            is_active: true,
            created_at: now,
            updated_at: now,
        };
        let audit = audit::event(
            "client_app.created",
            &caller.actor,
            "client_app",
            app.id,
            serde_json::json!({ "redirect_uris": redirect_uris }),
        );
        self.apps.insert_client_app(&app, &audit).await?;
        Ok(app)
    }

    /// Client apps whose name matches `query`, by id after `after`; at most `limit`.
    pub async fn list(
        &self,
        query: Option<&str>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ClientAppRow>, Error> {
        Ok(self.apps.list_client_apps(query, after, limit).await?)
    }

    /// One client app; NOT_FOUND when absent.
    pub async fn get(&self, id: Uuid) -> Result<ClientAppRow, Error> {
        self.apps
            .client_app_by_id(id)
            .await?
            .ok_or_else(|| Error::NotFound("client app".into()))
    }

    /// Changes a client app; with `revoke_sessions`, ends every session signed in through it.
    /// Returns the app and the number of sessions revoked.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        update: ClientAppUpdate<'_>,
    ) -> Result<(ClientAppRow, usize), Error> {
        let ClientAppUpdate {
            name,
            redirect_uris,
            services,
            is_active,
            revoke_sessions,
        } = update;
        let change = ClientAppChange {
            name: name
                .map(DisplayName::parse)
                .transpose()?
                .map(DisplayName::into_string),
            redirect_uris: redirect_uris
                .map(validate_redirect_uris)
                .transpose()?
                .map(|u| json(&u)),
            services: match services {
                Some(services) => Some(json(
                    &validate_services(self.apps.as_ref(), services).await?,
                )),
                None => None,
            },
            is_active,
        };
        let audit = audit::event(
            "client_app.updated",
            &caller.actor,
            "client_app",
            id,
            serde_json::json!({
                "name": change.name,
                "redirect_uris": redirect_uris,
                "services": services,
                "is_active": is_active,
                "revoke_sessions": revoke_sessions,
            }),
        );
        let app = self
            .apps
            .update_client_app(id, &change, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("client app".into()))?;
        let revoked = if revoke_sessions {
            self.revoke_sessions(id).await?
        } else {
            0
        };
        Ok((app, revoked))
    }

    /// Deletes a client app, optionally ending its sessions.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        revoke_sessions: bool,
    ) -> Result<usize, Error> {
        let revoked = if revoke_sessions {
            self.revoke_sessions(id).await?
        } else {
            0
        };
        let audit = audit::event(
            "client_app.deleted",
            &caller.actor,
            "client_app",
            id,
            serde_json::json!({ "revoke_sessions": revoke_sessions }),
        );
        if !self.apps.delete_client_app(id, &audit).await? {
            return Err(Error::NotFound("client app".into()));
        }
        Ok(revoked)
    }

    async fn revoke_sessions(&self, id: Uuid) -> Result<usize, Error> {
        let rows = self
            .tokens
            .revoke(RevokeScope::ClientApp(id), "client_app_disabled", None)
            .await?;
        Ok(rows.len())
    }
}
