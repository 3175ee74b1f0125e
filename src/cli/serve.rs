//! `smsflow serve [--role R]...`: run roles until SIGTERM or Ctrl-C, then drain.

use tokio_util::sync::CancellationToken;

use crate::app::{AppError, Application, Role};
use crate::config::Settings;

/// Run `roles` (every role when empty) in this process until a shutdown signal, then drain.
pub async fn run(settings: Settings, roles: Vec<Role>) -> Result<(), AppError> {
    let roles = if roles.is_empty() {
        Role::ALL.to_vec()
    } else {
        roles
    };
    let shutdown = CancellationToken::new();
    crate::shutdown::install(shutdown.clone());
    let app = Application::start(settings, &roles, shutdown).await?;
    app.wait().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The service name telemetry reports for a `serve` of these roles (`all` when empty).
pub fn service_role(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "all".to_string();
    }
    roles
        .iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join("+")
}
