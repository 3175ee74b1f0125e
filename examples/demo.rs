//! `make demo` traffic: signs a handful of realistic Twilio webhooks, posts them to a running
//! `smsflow serve`, waits until the projector wrote them, and prints the read model and the
//! pending items the query API serves to their owner (user "demo").
//!
//! Reads the same configuration as `smsflow` (smsflow.toml, SMSFLOW_*, TWILIO_AUTH_TOKEN).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use scylla::value::CqlTimestamp;
use smsflow::config::Settings;
use smsflow::ingress::signature;

const SAMPLES: &[(&str, &str)] = &[
    ("+15105550142", "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead"),
    ("+15105550142", "call Priya from Acme re pricing tomorrow at 5, priya@acme.io"),
    ("+14155550123", "lunch with Sam at Tartine, 600 Guerrero St, Friday noon #personal"),
    ("+14155550123", "this is Jordan Lee, new number 415-555-0199, see acme.io/pricing"),
    ("+12125550100", "reminder: renew passport by June 3rd #todo"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(None).context("loading configuration")?;
    let token = smsflow::secrets::non_empty(&settings.twilio.auth_token)
        .map(str::to_owned)
        .context("set TWILIO_AUTH_TOKEN to sign the demo's webhooks")?;
    let base = format!("http://{}", settings.http.addr);
    let public = settings.http.public_url.trim_end_matches('/').to_owned();
    let path = "/webhooks/twilio/messages";
    let client = reqwest::Client::new();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();

    let cql = smsflow::store::connect_to_keyspace(&settings.cql).await?;
    // The senders were linked just before (`smsflow phones link`); wait until projected.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (from, _) in SAMPLES {
        loop {
            let rows = cql
                .query_unpaged("SELECT verified FROM phones WHERE phone = ?", (from,))
                .await?
                .into_rows_result()?;
            if let Some((Some(true),)) = rows.maybe_first_row::<(Option<bool>,)>()? {
                break;
            }
            if Instant::now() > deadline {
                bail!("{from} is not registered; run `smsflow phones link {from} --user demo --verified`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut sids = Vec::new();
    for (i, (from, body)) in SAMPLES.iter().enumerate() {
        let sid = format!("SM{run:016x}{i:016x}");
        let params: Vec<(String, String)> = [
            ("MessageSid", sid.as_str()),
            ("SmsSid", sid.as_str()),
            ("AccountSid", "ACdemo0000000000000000000000000000"),
            ("From", from),
            ("To", "+14155550100"),
            ("Body", body),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = signature::compute(&token, &format!("{public}{path}"), &params);
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let started = Instant::now();
        let resp = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(form)
            .send()
            .await
            .with_context(|| format!("posting to {base}{path}; is `smsflow serve` running?"))?;
        println!(
            "POST {path} {sid} -> {} in {:.1} ms",
            resp.status(),
            started.elapsed().as_secs_f64() * 1e3
        );
        if !resp.status().is_success() {
            bail!("webhook refused: {}", resp.text().await.unwrap_or_default());
        }
        sids.push((sid, USER.to_string()));
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    println!("\nmessages_by_user (what the projector wrote):");
    for (sid, owner) in &sids {
        let row = loop {
            let rows = cql
                .query_unpaged(
                    "SELECT received_at, body FROM messages_by_user WHERE user_id = ? AND message_sid = ? ALLOW FILTERING",
                    (owner, sid),
                )
                .await?
                .into_rows_result()?;
            if let Some(r) = rows.maybe_first_row::<(CqlTimestamp, String)>()? {
                break r;
            }
            if Instant::now() > deadline {
                bail!("{sid} did not reach the read model within 30 s; check the projector's log");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "  {owner}  {sid}  received_at={}  body={:?}",
            row.0 .0, row.1
        );
    }
    print_pending_items(&client, &base, &settings, sids.len()).await?;
    if let Some((sid, _)) = sids.first() {
        print_trace_link(&client, sid).await;
    }
    Ok(())
}

/// The owner of the demo numbers.
const USER: &str = "demo";

/// Ask the query API, as user "demo", for the pending items of the messages just sent.
async fn print_pending_items(
    client: &reqwest::Client,
    base: &str,
    settings: &Settings,
    messages: usize,
) -> anyhow::Result<()> {
    let Some(secret) = smsflow::secrets::non_empty(&settings.api.auth.hs256_secret) else {
        println!(
            "
(set SMSFLOW_API__AUTH__HS256_SECRET to see the pending items through the API)"
        );
        return Ok(());
    };
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": USER, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let items = loop {
        let body: serde_json::Value = client
            .get(format!("{base}/v1/items?status=pending&limit=100"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let sids: std::collections::HashSet<&str> = items
            .iter()
            .filter_map(|i| i["message_sid"].as_str())
            .collect();
        if sids.len() >= messages || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "
pending items for user {USER} (GET /v1/items?status=pending):"
    );
    for i in &items {
        println!(
            "  {:<9} {:<32} from {:?}",
            i["kind"].as_str().unwrap_or("?"),
            i["normalized"].as_str().unwrap_or("?"),
            i["value"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Find the first demo message's trace through Jaeger's query API and print where to look.
async fn print_trace_link(client: &reqwest::Client, sid: &str) {
    let jaeger = std::env::var("JAEGER_URL").unwrap_or_else(|_| "http://127.0.0.1:16686".into());
    let tags = format!("{{\"message_sid\":\"{sid}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let found = client
            .get(format!("{jaeger}/api/traces"))
            .query(&[
                ("service", "smsflow"),
                ("tags", tags.as_str()),
                ("lookback", "1h"),
            ])
            .send()
            .await
            .ok();
        if let Some(resp) = found {
            if let Ok(body) = resp.json::<serde_json::Value>().await {
                if let Some(id) = body["data"][0]["traceID"].as_str() {
                    let spans = body["data"][0]["spans"].as_array().map_or(0, |s| s.len());
                    println!("\ntrace of {sid} ({spans} spans so far):");
                    println!("  UI:  {jaeger}/trace/{id}");
                    println!("  API: {jaeger}/api/traces/{id}");
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "\nno trace found for {sid} in Jaeger at {jaeger} (is it running? `make stack-status`)"
    );
}
