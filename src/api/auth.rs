//! Bearer JWT authentication: HS256 with a shared secret, or RS256/ES256 keys from a JWKS
//! URL ([`jwks`](super::jwks) caches them). `sub` is the user id; a role claim (`roles` array
//! or `role` string) containing `api.auth.admin_role` opens the admin routes. `exp` is
//! required, `nbf` is checked when present, and `aud` is required whenever an audience is
//! configured (always with `jwks_url`: an issuer's keys sign tokens for other services too).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::jwks::{Jwks, JwksError, JwksPolicy};
use crate::secrets::SecretString;

/// `[api.auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens (`SMSFLOW_API__AUTH__HS256_SECRET`).
    #[serde(serialize_with = "crate::secrets::serialize_option")]
    pub hs256_secret: Option<SecretString>,
    /// A JWKS document with the issuer's public keys (RS256, ES256). Requires `audience`.
    pub jwks_url: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set; must be set with `jwks_url`.
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
    jwks: Option<Jwks>,
}

impl Authenticator {
    /// Build from settings; with neither a secret nor a JWKS URL every request is refused.
    pub fn new(settings: &AuthSettings) -> Authenticator {
        Self::with_jwks_policy(settings, JwksPolicy::default())
    }

    /// Build with a JWKS cache policy of one's own (tests shorten its times).
    pub fn with_jwks_policy(settings: &AuthSettings, policy: JwksPolicy) -> Authenticator {
        Authenticator {
            settings: settings.clone(),
            jwks: settings
                .jwks_url
                .as_deref()
                .map(|url| Jwks::new(url, policy)),
        }
    }

    fn hs256_secret(&self) -> Option<&str> {
        crate::secrets::non_empty(&self.settings.hs256_secret)
    }

    /// Whether any key source is configured.
    pub fn configured(&self) -> bool {
        self.hs256_secret().is_some() || self.jwks.is_some()
    }

    /// The role that opens the admin routes.
    pub fn admin_role(&self) -> &str {
        self.settings.admin_role.as_deref().unwrap_or("admin")
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.settings.issuer {
            v.set_issuer(&[iss]);
        }
        match &self.settings.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.required_spec_claims.insert("aud".to_owned());
            }
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
                    .hs256_secret()
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
        let jwks = self
            .jwks
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("only HS256 tokens are accepted here"))?;
        let jwk = jwks.key(kid).await.map_err(|e| match e {
            JwksError::UnknownKid => ApiError::unauthorized(e.to_string()),
            JwksError::Unavailable(_) => ApiError::dependency("the token issuer's JWKS", e),
        })?;
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

    /// A JWKS server on loopback holding the test RSA key as `rsa1`.
    async fn rsa_issuer() -> String {
        let n = include_str!("../../tests/fixtures/jwks_test_rs256.n").trim();
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"}
        ]});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || std::future::ready(axum::Json(doc.clone()))),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn rsa_token(claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa1".into());
        let key =
            EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/jwks_test_rs256.pem"))
                .unwrap();
        encode(&header, &claims, &key).unwrap()
    }

    #[tokio::test]
    async fn jwks_tokens_need_the_configured_audience_and_respect_nbf() {
        let a = Authenticator::new(&AuthSettings {
            jwks_url: Some(rsa_issuer().await),
            audience: Some("smsflow-api".into()),
            ..AuthSettings::default()
        });
        let good =
            rsa_token(serde_json::json!({"sub": "u1", "exp": exp(60), "aud": "smsflow-api"}));
        assert_eq!(a.authenticate(&good).await.unwrap().user_id, "u1");
        for (why, claims) in [
            ("no aud", serde_json::json!({"sub": "u1", "exp": exp(60)})),
            (
                "another service's aud",
                serde_json::json!({"sub": "u1", "exp": exp(60), "aud": "billing"}),
            ),
            (
                "not valid before an hour from now",
                serde_json::json!({"sub": "u1", "exp": exp(7200), "nbf": exp(3600), "aud": "smsflow-api"}),
            ),
        ] {
            let e = a.authenticate(&rsa_token(claims)).await.unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{why}");
        }
        // A token signed by someone else's key under our kid.
        let forged = {
            let mut t = good.clone();
            t.truncate(t.rfind('.').unwrap() + 1);
            t + "c2lnbmF0dXJl"
        };
        assert!(a.authenticate(&forged).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_a_503_not_a_401() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let a = Authenticator::new(&AuthSettings {
            jwks_url: Some(format!("http://{closed}/jwks.json")),
            audience: Some("smsflow-api".into()),
            ..AuthSettings::default()
        });
        let t = rsa_token(serde_json::json!({"sub": "u1", "exp": exp(60), "aud": "smsflow-api"}));
        let e = a.authenticate(&t).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_jwks_url_without_an_audience_is_refused_at_load() {
        let mut s = super::super::ApiSettings::default();
        s.auth.jwks_url = Some("https://issuer.example.com/.well-known/jwks.json".into());
        assert_eq!(s.validate().unwrap_err().key, "api.auth.audience");
        s.auth.audience = Some("smsflow-api".into());
        assert!(s.validate().is_ok());
    }

    #[tokio::test]
    async fn hs256_tokens_not_yet_valid_are_refused() {
        let a = auth();
        let t = token(
            "s3cret",
            serde_json::json!({"sub": "u1", "exp": exp(7200), "nbf": exp(3600)}),
        );
        assert!(a.authenticate(&t).await.is_err());
    }

    #[test]
    fn the_hs256_secret_never_prints() {
        let s = AuthSettings {
            hs256_secret: Some("hs-very-secret".into()),
            ..AuthSettings::default()
        };
        assert!(!format!("{s:?}").contains("hs-very-secret"));
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
