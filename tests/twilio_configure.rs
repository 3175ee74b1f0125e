//! `smsflow twilio configure` against a Twilio REST stand-in that speaks Twilio's wire format
//! (form-encoded POSTs, basic auth, JSON resources, Twilio's error object): it sets a number's
//! or a Messaging Service's inbound URLs with the retry overrides, reads them back, and with
//! `--check` reports drift without changing anything. No Kafka is needed.

mod common;

use std::process::Command;

use common::twilio_api::{FakeTwilio, ACCOUNT_SID};
use common::AUTH_TOKEN;
use secrecy::SecretString;
use smsflow::twilio::settings::RECOMMENDED_OVERRIDES;
use smsflow::twilio::{
    configure, ConfigureError, RestError, Target, TwilioRest, WebhookPlan, WebhookSettings,
};

const NUMBER_SID: &str = "PN0123456789abcdef0123456789abcdef";
const NUMBER: &str = "+14155550100";
const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
const PUBLIC: &str = "https://sms.example.com";

fn webhooks(fake: &FakeTwilio) -> WebhookSettings {
    WebhookSettings {
        fallback_url: Some("https://fallback.example.net/webhooks/twilio/messages".into()),
        api_base: fake.base_url.clone(),
        messaging_api_base: fake.base_url.clone(),
        ..WebhookSettings::default()
    }
}

fn client(fake: &FakeTwilio, token: &str) -> TwilioRest {
    TwilioRest::new(
        Some(ACCOUNT_SID),
        Some(SecretString::from(token.to_owned())),
        &webhooks(fake),
    )
    .expect("client")
}

fn plan(fake: &FakeTwilio) -> WebhookPlan {
    WebhookPlan::new(PUBLIC, &webhooks(fake), None).expect("plan")
}

#[tokio::test]
async fn configure_sets_a_numbers_urls_with_retry_overrides_and_reads_them_back() {
    let fake = FakeTwilio::start().await;
    fake.add_number(NUMBER_SID, NUMBER);
    fake.set_number_field(
        NUMBER_SID,
        "sms_application_sid",
        "AP0123456789abcdef0123456789abcdef".into(),
    );
    let c = client(&fake, AUTH_TOKEN);
    let target = Target::Number(NUMBER.into());

    let report = configure(&c, &target, &plan(&fake), false)
        .await
        .expect("configure");
    assert!(report.updated);
    assert_eq!(report.drift().count(), 3, "{:?}", report.before);

    let n = fake.number(NUMBER_SID);
    let inbound = format!("{PUBLIC}/webhooks/twilio/messages#{RECOMMENDED_OVERRIDES}");
    assert_eq!(n["sms_url"], inbound.as_str());
    assert_eq!(n["sms_method"], "POST");
    assert_eq!(
        n["sms_fallback_url"],
        format!("https://fallback.example.net/webhooks/twilio/messages#{RECOMMENDED_OVERRIDES}")
            .as_str()
    );
    assert_eq!(
        n["sms_application_sid"], "",
        "an SMS application would take over the URLs"
    );
    // The number's StatusCallback is for calls: never touched.
    assert_eq!(n["status_callback"], "");

    // On the wire: a lookup by number, one form POST with only what differed, then a read-back.
    let seen = fake.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "GET"]);
    assert_eq!(
        seen[0].form.get("PhoneNumber").map(String::as_str),
        Some(NUMBER)
    );
    let post = &seen[1];
    assert_eq!(
        post.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{NUMBER_SID}.json")
    );
    assert_eq!(post.form.get("SmsUrl"), Some(&inbound));
    assert!(!post.form.contains_key("StatusCallback"));

    // A second run finds nothing to change and sends no update.
    let again = configure(&c, &Target::Number(NUMBER_SID.into()), &plan(&fake), false)
        .await
        .expect("second configure");
    assert!(!again.updated);
    assert_eq!(again.drift().count(), 0);
    assert_eq!(fake.seen().iter().filter(|s| s.method == "POST").count(), 1);
}

#[tokio::test]
async fn configure_sets_a_messaging_services_inbound_fallback_and_status_urls() {
    let fake = FakeTwilio::start().await;
    fake.add_service(SERVICE_SID);
    let c = client(&fake, AUTH_TOKEN);
    let report = configure(
        &c,
        &Target::Service(SERVICE_SID.into()),
        &plan(&fake),
        false,
    )
    .await
    .expect("configure");
    assert!(report.updated);
    let s = fake.service(SERVICE_SID);
    assert_eq!(
        s["inbound_request_url"],
        format!("{PUBLIC}/webhooks/twilio/messages#{RECOMMENDED_OVERRIDES}").as_str()
    );
    assert_eq!(s["inbound_method"], "POST");
    assert_eq!(
        s["fallback_url"],
        format!("https://fallback.example.net/webhooks/twilio/messages#{RECOMMENDED_OVERRIDES}")
            .as_str()
    );
    assert_eq!(
        s["status_callback"],
        format!("{PUBLIC}/webhooks/twilio/status#{RECOMMENDED_OVERRIDES}").as_str()
    );
    assert_eq!(
        s["use_inbound_webhook_on_number"], false,
        "numbers' own URLs would win otherwise"
    );
}

#[tokio::test]
async fn check_reports_drift_and_changes_nothing() {
    let fake = FakeTwilio::start().await;
    fake.add_number(NUMBER_SID, NUMBER);
    let c = client(&fake, AUTH_TOKEN);
    configure(&c, &Target::Number(NUMBER_SID.into()), &plan(&fake), false)
        .await
        .expect("configure");
    // Someone removes the overrides in the Console: a 503 would now be lost.
    fake.set_number_field(
        NUMBER_SID,
        "sms_url",
        format!("{PUBLIC}/webhooks/twilio/messages").into(),
    );
    let posts_before = fake.seen().iter().filter(|s| s.method == "POST").count();

    let report = configure(&c, &Target::Number(NUMBER_SID.into()), &plan(&fake), true)
        .await
        .expect("check");
    assert!(!report.updated);
    let drift: Vec<_> = report.drift().map(|f| f.name).collect();
    assert_eq!(drift, ["SmsUrl"]);
    assert_eq!(
        fake.seen().iter().filter(|s| s.method == "POST").count(),
        posts_before
    );
    assert_eq!(
        fake.number(NUMBER_SID)["sms_url"],
        format!("{PUBLIC}/webhooks/twilio/messages").as_str()
    );
}

#[tokio::test]
async fn a_value_twilio_did_not_keep_is_an_error_after_the_read_back() {
    let fake = FakeTwilio::start().await;
    fake.add_number(NUMBER_SID, NUMBER);
    fake.ignore_field("SmsFallbackUrl");
    let err = configure(
        &client(&fake, AUTH_TOKEN),
        &Target::Number(NUMBER_SID.into()),
        &plan(&fake),
        false,
    )
    .await
    .expect_err("the fallback was not kept");
    match err {
        ConfigureError::NotApplied { fields, .. } => {
            assert!(fields.contains("SmsFallbackUrl"), "{fields}")
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn twilios_401_and_404_are_reported_with_their_codes_and_a_hint() {
    let fake = FakeTwilio::start().await;
    fake.add_number(NUMBER_SID, NUMBER);
    let err = configure(
        &client(&fake, "wrong-token"),
        &Target::Number(NUMBER_SID.into()),
        &plan(&fake),
        true,
    )
    .await
    .expect_err("bad credentials");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ConfigureError::Rest(RestError::Twilio {
                status: 401,
                code: Some(20003),
                ..
            })
        ),
        "{text}"
    );
    assert!(
        text.contains("TWILIO_AUTH_TOKEN") && !text.contains("wrong-token"),
        "{text}"
    );

    let err = configure(
        &client(&fake, AUTH_TOKEN),
        &Target::Service("MGffffffffffffffffffffffffffffffff".into()),
        &plan(&fake),
        true,
    )
    .await
    .expect_err("unknown service");
    assert!(
        matches!(
            err,
            ConfigureError::Rest(RestError::Twilio {
                status: 404,
                code: Some(20404),
                ..
            })
        ),
        "{err}"
    );

    let err = configure(
        &client(&fake, AUTH_TOKEN),
        &Target::Number("+14155550199".into()),
        &plan(&fake),
        true,
    )
    .await
    .expect_err("unknown number");
    assert!(
        matches!(err, ConfigureError::Rest(RestError::NumberNotFound(_))),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_twilio_fails_within_the_request_timeout() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let settings = WebhookSettings {
        api_base: base.clone(),
        messaging_api_base: base,
        request_timeout: std::time::Duration::from_millis(500),
        ..WebhookSettings::default()
    };
    let c = TwilioRest::new(
        Some(ACCOUNT_SID),
        Some(SecretString::from(AUTH_TOKEN.to_owned())),
        &settings,
    )
    .unwrap();
    let plan = WebhookPlan::new(PUBLIC, &settings, None).unwrap();
    let started = std::time::Instant::now();
    let err = configure(&c, &Target::Number(NUMBER_SID.into()), &plan, true)
        .await
        .expect_err("no answer");
    assert!(
        matches!(err, ConfigureError::Rest(RestError::Transport(_))),
        "{err}"
    );
    // Bounded by the timeout (generous slack for a loaded CI machine).
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    held.abort();
}

/// The command itself: exit 0 after configuring, `--check` exits 3 on drift and 0 when in sync.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_configures_then_check_exits_3_on_drift() {
    let fake = FakeTwilio::start().await;
    fake.add_number(NUMBER_SID, NUMBER);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .args(args)
            .env("SMSFLOW_CONFIG", "/dev/null")
            .env("SMSFLOW_HTTP__PUBLIC_URL", PUBLIC)
            .env("SMSFLOW_TWILIO__WEBHOOKS__API_BASE", &fake.base_url)
            .env(
                "SMSFLOW_TWILIO__WEBHOOKS__MESSAGING_API_BASE",
                &fake.base_url,
            )
            .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("SMSFLOW_TELEMETRY__TRACES", "false")
            .output()
            .expect("run smsflow");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let check = ["twilio", "configure", "--number", NUMBER, "--check"];
    // Tokio's blocking pool keeps the fake's runtime serving while the child runs.
    let (code, out, err) = tokio::task::block_in_place(|| run(&check));
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(out.contains("DRIFT") && out.contains("SmsUrl"), "{out}");
    assert!(!out.contains(AUTH_TOKEN) && !err.contains(AUTH_TOKEN));
    assert_eq!(fake.seen().iter().filter(|s| s.method == "POST").count(), 0);

    let (code, out, err) =
        tokio::task::block_in_place(|| run(&["twilio", "configure", "--number", NUMBER]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("updated"), "{out}");
    let (code, out, err) = tokio::task::block_in_place(|| run(&check));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("in sync"), "{out}");
}
