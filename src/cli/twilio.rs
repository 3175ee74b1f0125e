//! `smsflow twilio configure [--check]`: set (or check) the number's or Messaging Service's
//! webhook URLs, with the connection overrides that make Twilio retry a 503.

use crate::config::Settings;
use crate::twilio::{self, webhooks::PlanError, ConfigureError, RestError, Target, WebhookPlan};

/// Why `twilio configure` failed.
#[derive(Debug, thiserror::Error)]
pub enum TwilioCommandError {
    #[error("name the resource: --number, --service, twilio.webhooks.phone_number or twilio.webhooks.messaging_service_sid")]
    NoTarget,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error(transparent)]
    Configure(#[from] ConfigureError),
}

/// Set the webhook URLs and read them back, or with `check` only compare them; print each
/// field. Returns the number of fields that differ under `check` (0 otherwise).
pub async fn configure(
    settings: &Settings,
    number: Option<String>,
    service: Option<String>,
    check: bool,
) -> Result<usize, TwilioCommandError> {
    let webhooks = &settings.twilio.webhooks;
    for p in twilio::public_url::problems(
        &settings.http.public_url,
        &webhooks.overrides,
        settings.kafka.produce_deadline,
    ) {
        eprintln!("warning  {p}");
    }
    let target = Target::choose(number.as_deref(), service.as_deref(), webhooks)
        .ok_or(TwilioCommandError::NoTarget)?;
    let plan = WebhookPlan::new(
        &settings.http.public_url,
        webhooks,
        settings.notify.status_callback_url.as_deref(),
    )?;
    let client = twilio::TwilioRest::new(
        settings.twilio.account_sid.as_deref(),
        settings.twilio.auth_token.clone(),
        webhooks,
    )?;
    let report = twilio::configure(&client, &target, &plan, check).await?;
    println!("{}", report.resource);
    for f in &report.before {
        let tag = match (&f.desired, f.matches()) {
            (None, _) => "note ",
            (Some(_), true) => "ok   ",
            (Some(_), false) if report.updated => "SET  ",
            (Some(_), false) => "DRIFT",
        };
        println!("{tag}    {f}");
    }
    let drift = report.drift().count();
    match (check, drift) {
        (_, 0) => println!("in sync: Twilio calls the URLs this deployment expects"),
        (true, n) => {
            println!("{n} field(s) differ; `smsflow twilio configure` sets them");
            return Ok(n);
        }
        (false, n) => println!("updated {n} field(s) and read them back"),
    }
    Ok(0)
}
