//! GitHub: the user behind an access token (its API, not an ID token), and the check that a
//! token was issued to this provider's OAuth app.

use super::{Login, LoginError, Provider, VerifiedIdentity};

impl Login {
    pub(super) async fn github_identity(
        &self,
        provider: &str,
        api_url: &str,
        token: &str,
    ) -> Result<VerifiedIdentity, LoginError> {
        let get = |path: &str| {
            self.http
                .get(format!("{api_url}{path}"))
                .bearer_auth(token)
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "sentinel")
                .send()
        };
        let user: serde_json::Value = get("/user")
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LoginError::invalid_token(format!("GitHub user: {e}")))?
            .json()
            .await
            .map_err(|e| LoginError::provider(format!("GitHub user: {e}")))?;
        let emails: Vec<serde_json::Value> = get("/user/emails")
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LoginError::invalid_token(format!("GitHub emails: {e}")))?
            .json()
            .await
            .map_err(|e| LoginError::provider(format!("GitHub emails: {e}")))?;
        let subject = user
            .get("id")
            .map(|id| id.to_string().trim_matches('"').to_string())
            .filter(|id| !id.is_empty() && id != "null")
            .ok_or_else(|| LoginError::provider("GitHub user without id".into()))?;
        let email = emails
            .iter()
            .find(|e| {
                e.get("primary").and_then(|v| v.as_bool()) == Some(true)
                    && e.get("verified").and_then(|v| v.as_bool()) == Some(true)
            })
            .and_then(|e| e.get("email").and_then(|v| v.as_str()))
            .ok_or(LoginError::EmailNotVerified)?;
        let text = |key: &str| {
            user.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok(VerifiedIdentity {
            provider: provider.to_string(),
            subject,
            email: email.to_string(),
            name: {
                let name = text("name");
                if name.is_empty() { text("login") } else { name }
            },
            avatar_url: text("avatar_url"),
            domain_verified: false,
            organization: None,
        })
    }

    /// GitHub's check that an access token was issued to this provider's OAuth app
    /// (`POST {api}/applications/{client_id}/token`, authenticated as the app): 200 when it was,
    /// 404 or 422 otherwise.
    pub(super) async fn github_token_is_ours(
        &self,
        p: &Provider,
        api_url: &str,
        token: &str,
    ) -> Result<(), LoginError> {
        let url = reqwest::Url::parse(&format!("{api_url}/applications/"))
            .and_then(|base| base.join(&format!("{}/token", p.client_id)))
            .map_err(|_| LoginError::provider("bad GitHub API URL".into()))?;
        let response = self
            .http
            .post(url)
            .basic_auth(&p.client_id, Some(&p.client_secret))
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "sentinel")
            .json(&serde_json::json!({ "access_token": token }))
            .send()
            .await
            .map_err(|e| LoginError::provider(format!("GitHub token check: {e}")))?;
        match response.status().as_u16() {
            200 => Ok(()),
            404 | 422 => Err(LoginError::invalid_token(
                "GitHub token not issued to this OAuth app".into(),
            )),
            status => Err(LoginError::provider(format!(
                "GitHub token check answered {status}"
            ))),
        }
    }
}
