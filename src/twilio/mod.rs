//! Our side of Twilio's configuration: the webhook URLs (with the connection overrides that
//! make Twilio retry a 503), the REST client that sets and checks them on a number or a
//! Messaging Service, and the start-up checks of `http.public_url`.

pub mod overrides;
pub mod public_url;
pub mod rest;
pub mod settings;
pub mod startup;
pub mod webhooks;

pub use overrides::ConnectionOverrides;
pub use rest::{RestError, TwilioRest};
pub use settings::WebhookSettings;
pub use webhooks::{configure, ConfigureError, Report, Target, WebhookPlan};
