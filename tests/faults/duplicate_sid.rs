//! The same MessageSid ingested twice.

use super::*;

async fn get(http: &reqwest::Client, url: String, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    r.json().await.unwrap_or(Value::Null)
}

/// Item ids in one list, in list order, duplicates kept.
async fn listed(http: &reqwest::Client, base: &str, token: &str, status: &str) -> Vec<String> {
    let v = get(
        http,
        format!("{base}/v1/items?status={status}&limit=100"),
        token,
    )
    .await;
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_sid_ingested_twice_is_listed_once_and_a_review_between_stays() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    // As after a Redis outage in fail_open: nothing stops the second copy.
    settings.ingress.dedupe = false;
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector, Role::Api],
    )
    .await;
    let http = reqwest::Client::new();
    let params = sms_with(
        3,
        &[(
            "Body",
            "call Dana Reyes at 510-555-0142 or dana@example.com #lead",
        )],
    );
    let map = as_map(&params);
    let (sid, user) = (map["MessageSid"].clone(), map["From"].clone());
    let me = jwt(&user, false);

    // The first copy, enriched and listed.
    assert_eq!(
        post_signed_retrying_503(&http, &app.base_url, &params).await,
        200
    );
    let pending = wait_for("the first copy's items", Duration::from_secs(90), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let l = listed(&http, &base, &me, "pending").await;
            (l.len() >= 3).then_some(l)
        }
    })
    .await;
    // A review between the copies.
    let reviewed = pending[0].clone();
    let r = http
        .post(format!(
            "{}/v1/items/{reviewed}/review?wait=true",
            app.base_url
        ))
        .bearer_auth(&me)
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the review to be listed", Duration::from_secs(60), || {
        let (http, base, me, id) = (
            http.clone(),
            app.base_url.clone(),
            me.clone(),
            reviewed.clone(),
        );
        async move { (listed(&http, &base, &me, "approved").await == [id]).then_some(()) }
    })
    .await;

    // The second copy: a fresh received_at, later than the review.
    assert_eq!(
        post_signed_retrying_503(&http, &app.base_url, &params).await,
        200
    );
    let copies: Vec<MessageReceived> =
        read_committed_to_end(&env, &env.topic(smsflow::topics::MESSAGES))
            .await
            .iter()
            .filter_map(|b| decode::<MessageReceived>(b).ok())
            .filter(|m| m.message_sid == sid)
            .collect();
    assert_eq!(copies.len(), 2, "both copies were appended");
    assert!(copies[1].received_at > copies[0].received_at);
    // Wait until the second copy's proposal is projected.
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    wait_for(
        "the second copy's proposal",
        Duration::from_secs(90),
        || {
            let (env, sid) = (&env, sid.clone());
            let enrichments = enrichments.clone();
            async move {
                let n = read_committed_to_end(env, &enrichments)
                    .await
                    .iter()
                    .filter_map(|b| decode::<ItemsProposed>(b).ok())
                    .filter(|p| p.message_sid == sid)
                    .count();
                (n == 2).then_some(())
            }
        },
    )
    .await;
    // Then a sentinel proposal of the same user and hour, appended after the second copy's:
    // the items projection applies one user-hour's events in order, so once the sentinel is
    // listed the second copy has been applied. (The enrich stage writes transactionally, so
    // the commit markers keep the projector's informational lag above 0.)
    let sentinel = ItemsProposed {
        event_id: "sentinel".into(),
        message_sid: "SMsentinel".into(),
        user_id: user.clone(),
        part: "body".into(),
        received_at: copies[1].received_at,
        proposed_at: copies[1].received_at,
        items: vec![tag_item("sentinel-item", "sentinel")],
    };
    env.fixture_producer()
        .send(&enrichments, &user, &sentinel)
        .await
        .unwrap();
    let mut now_pending = wait_for("the sentinel to be listed", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let l = listed(&http, &base, &me, "pending").await;
            l.contains(&"sentinel-item".to_owned()).then_some(l)
        }
    })
    .await;
    now_pending.retain(|id| id != "sentinel-item");

    let mut expected: Vec<String> = pending[1..].to_vec();
    expected.sort();
    now_pending.sort();
    assert_eq!(
        now_pending, expected,
        "each item listed once, the reviewed one not again"
    );
    assert_eq!(
        listed(&http, &app.base_url, &me, "approved").await,
        std::slice::from_ref(&reviewed)
    );
    let item = get(&http, format!("{}/v1/items/{reviewed}", app.base_url), &me).await;
    assert_eq!(item["status"], "approved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_message_in_different_hour_buckets_list_the_item_once() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Projector, Role::Api]).await;
    let producer = env.fixture_producer();
    let http = reqwest::Client::new();
    let user = "hour-user";
    let me = jwt(user, false);
    // Time is set on the events, as ingress stamps it: the first copy was received in the
    // last second of the previous hour, the second copy now, after the review (so minutes,
    // up to an hour, apart and always in another hour bucket).
    let hour = 3_600_000_000i64;
    let first_at = smsflow::clock::now_micros().div_euclid(hour) * hour - 1_000_000;
    let proposal = |event_id: &str, received_at: i64| ItemsProposed {
        event_id: event_id.into(),
        message_sid: "SMhour".into(),
        user_id: user.into(),
        part: "body".into(),
        received_at,
        proposed_at: received_at + 1_000,
        items: vec![tag_item("hour-item", "lead")],
    };
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    producer
        .send(&enrichments, user, &proposal("first", first_at))
        .await
        .unwrap();
    wait_for("the item to be pending", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move { (listed(&http, &base, &me, "pending").await == ["hour-item"]).then_some(()) }
    })
    .await;
    let review = ItemReviewed {
        event_id: "rev-hour".into(),
        item_id: "hour-item".into(),
        user_id: user.into(),
        decision: "approve".into(),
        reviewed_at: smsflow::clock::now_micros(),
        message_sid: "SMhour".into(),
        item_created_at: first_at,
        kind: "tag".into(),
        value: "#lead".into(),
        normalized: "lead".into(),
    };
    producer
        .send(&env.topic(smsflow::topics::REVIEWS), user, &review)
        .await
        .unwrap();
    wait_for("the item to be approved", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move { (listed(&http, &base, &me, "approved").await == ["hour-item"]).then_some(()) }
    })
    .await;
    let second_at = smsflow::clock::now_micros();
    assert_ne!(
        smsflow::projector::items::bucket_of(first_at),
        smsflow::projector::items::bucket_of(second_at)
    );
    producer
        .send(&enrichments, user, &proposal("second", second_at))
        .await
        .unwrap();
    wait_for_zero_lag(
        &env,
        &format!("{}-items", env.settings.projector.group_id),
        &enrichments,
    )
    .await;
    assert_eq!(
        listed(&http, &app.base_url, &me, "pending").await,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&http, &app.base_url, &me, "approved").await,
        ["hour-item"]
    );
    let item = get(&http, format!("{}/v1/items/hour-item", app.base_url), &me).await;
    assert_eq!(item["status"], "approved");
    app.stop().await;
}
