//! The HTTP API besides the webhook: health, readiness, operator endpoints (JWT admin role),
//! the user API behind bearer JWTs (`/v1/phones`, `/v1/items`, `/v1/messages`), and its
//! OpenAPI document.

pub mod admin;
pub mod auth;
pub mod error;
pub mod health;
pub mod items;
pub mod openapi;
pub mod phones;

use serde::{Deserialize, Serialize};

pub use error::ApiError;
pub use health::Dependencies;

/// `[api]`: the user-facing API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// How bearer tokens are checked.
    pub auth: auth::AuthSettings,
}
