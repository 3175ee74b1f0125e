//! Bearer JWT authentication: HS256 with a shared secret, or RS256/ES256 keys from a JWKS
//! URL. `sub` is the user id; a role claim (`roles` array or `role` string) containing
//! `api.auth.admin_role` opens the admin routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::error::ApiError;

/// `[api.auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens (`SMSFLOW_API__AUTH__HS256_SECRET`).
    pub hs256_secret: Option<String>,
    /// A JWKS document with the issuer's public keys (RS256, ES256).
    pub jwks_url: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// The role that opens `/v1/admin/...` (default `admin`).
    pub admin_role: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub user_id: String,
    pub admin: bool,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    role: Option<String>,
}

/// Validates bearer tokens.
pub struct Authenticator {
    settings: AuthSettings,
    http: reqwest::Client,
    jwks: RwLock<Option<(JwkSet, Instant)>>,
}

/// How long a fetched JWKS is trusted before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches triggered by an unknown `kid`.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

impl Authenticator {
    /// Build from settings; with neither a secret nor a JWKS URL every request is refused.
    pub fn new(settings: &AuthSettings) -> Authenticator {
        Authenticator {
            settings: settings.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            jwks: RwLock::new(None),
        }
    }

    /// Whether any key source is configured.
    pub fn configured(&self) -> bool {
        self.settings
            .hs256_secret
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || self.settings.jwks_url.is_some()
    }

    /// The role that opens the admin routes.
    pub fn admin_role(&self) -> &str {
        self.settings.admin_role.as_deref().unwrap_or("admin")
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.settings.issuer {
            v.set_issuer(&[iss]);
        }
        match &self.settings.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    /// Validate a bearer token and name its caller.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        if !self.configured() {
            return Err(ApiError::unauthorized(
                "this server accepts no tokens yet: its operator must set api.auth.hs256_secret or api.auth.jwks_url",
            ));
        }
        let head = decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("malformed bearer token: {e}")))?;
        let claims = match head.alg {
            Algorithm::HS256 => {
                let secret = self
                    .settings
                    .hs256_secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ApiError::unauthorized("HS256 tokens are not accepted here"))?;
                decode::<Claims>(
                    token,
                    &DecodingKey::from_secret(secret.as_bytes()),
                    &self.validation(Algorithm::HS256),
                )
            }
            alg => {
                let key = self.jwk_key(head.kid.as_deref()).await?;
                decode::<Claims>(token, &key, &self.validation(alg))
            }
        }
        .map_err(|e| ApiError::unauthorized(format!("invalid bearer token: {e}")))?
        .claims;
        if claims.sub.is_empty() {
            return Err(ApiError::unauthorized("the token has an empty sub"));
        }
        let admin_role = self.admin_role();
        let admin = claims.roles.iter().any(|r| r == admin_role)
            || claims.role.as_deref() == Some(admin_role);
        Ok(Caller {
            user_id: claims.sub,
            admin,
        })
    }

    async fn jwk_key(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        let url = self
            .settings
            .jwks_url
            .as_deref()
            .ok_or_else(|| ApiError::unauthorized("only HS256 tokens are accepted here"))?;
        let find = |set: &JwkSet| match kid {
            Some(k) => set.find(k).cloned(),
            None => set.keys.first().cloned(),
        };
        let (cached, stale) = {
            let guard = self.jwks.read().await;
            match guard.as_ref() {
                Some((set, at)) => (find(set), at.elapsed() > JWKS_TTL),
                None => (None, true),
            }
        };
        let jwk = match cached {
            Some(jwk) if !stale => jwk,
            _ => {
                let mut guard = self.jwks.write().await;
                // Another request may have refreshed it while this one waited.
                let recent = guard
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() < JWKS_MIN_REFRESH);
                if !recent {
                    let set: JwkSet = self
                        .http
                        .get(url)
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| ApiError::dependency("the token issuer's JWKS", e))?
                        .json()
                        .await
                        .map_err(|e| ApiError::dependency("the token issuer's JWKS", e))?;
                    *guard = Some((set, Instant::now()));
                }
                guard
                    .as_ref()
                    .and_then(|(set, _)| find(set))
                    .ok_or_else(|| {
                        ApiError::unauthorized("the token's key id is not in the JWKS")
                    })?
            }
        };
        DecodingKey::from_jwk(&jwk)
            .map_err(|e| ApiError::unauthorized(format!("unusable JWKS key: {e}")))
    }
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Middleware: a valid token is required; the caller is put in the request's extensions.
pub async fn require_user(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::unauthorized("a bearer token is required (Authorization: Bearer <JWT>)")
            .into_response();
    };
    match auth.authenticate(token).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware for the admin routes: a valid token whose role claim carries the admin role;
/// any other valid token gets 403.
pub async fn require_admin(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::unauthorized(
            "the admin routes need a bearer token with the admin role (Authorization: Bearer <JWT>)",
        )
        .into_response();
    };
    match auth.authenticate(token).await {
        Ok(caller) if caller.admin => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(_) => ApiError::forbidden(format!(
            "the admin routes need the `{}` role in the token's `roles` or `role` claim",
            auth.admin_role()
        ))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn auth() -> Authenticator {
        Authenticator::new(&AuthSettings {
            hs256_secret: Some("s3cret".into()),
            ..AuthSettings::default()
        })
    }

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn exp(offset: i64) -> i64 {
        crate::clock::now_millis() / 1000 + offset
    }

    #[tokio::test]
    async fn valid_tokens_name_the_user_and_role() {
        let a = auth();
        let t = token("s3cret", serde_json::json!({"sub": "u1", "exp": exp(60)}));
        assert_eq!(
            a.authenticate(&t).await.unwrap(),
            Caller {
                user_id: "u1".into(),
                admin: false
            }
        );
        let t = token(
            "s3cret",
            serde_json::json!({"sub": "ops", "exp": exp(60), "roles": ["admin"]}),
        );
        assert!(a.authenticate(&t).await.unwrap().admin);
    }

    #[tokio::test]
    async fn without_a_key_source_every_token_is_refused() {
        let a = Authenticator::new(&AuthSettings::default());
        let t = token(
            "s3cret",
            serde_json::json!({"sub": "ops", "exp": exp(60), "roles": ["admin"]}),
        );
        let e = a.authenticate(&t).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("api.auth.hs256_secret"), "{}", e.message);
    }

    #[tokio::test]
    async fn expired_forged_and_malformed_tokens_are_refused() {
        let a = auth();
        for t in [
            token(
                "s3cret",
                serde_json::json!({"sub": "u1", "exp": exp(-3600)}),
            ),
            token("other", serde_json::json!({"sub": "u1", "exp": exp(60)})),
            token("s3cret", serde_json::json!({"sub": "u1"})),
            "not.a.jwt".to_string(),
        ] {
            let e = a.authenticate(&t).await.unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{t}");
        }
    }
}
