//! A number verified while no ingress ran.

use super::*;

/// MessageSids appended as `MessageReceived` (accepted, not `SenderRejected`).
async fn accepted_sids(env: &TestEnv) -> Vec<String> {
    read_committed_to_end(env, &env.topic(smsflow::topics::MESSAGES))
        .await
        .iter()
        .filter_map(|b| decode::<MessageReceived>(b).ok())
        .map(|m| m.message_sid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_verified_while_no_ingress_ran_is_accepted_once_its_link_is_in_the_registry() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    // Verified while no ingress runs; and no projector runs in this test at all, so the link
    // is only in the registry topic, never in the `phones` read model.
    let (phone, _) =
        smsflow::cli::phones::link(&patient(&settings), "+15105550163", "gina", true, false)
            .await
            .unwrap();
    let app = TestApp::spawn(settings.clone(), &[Role::Ingress]).await;
    let http = reqwest::Client::new();

    // Text from the number until one is accepted (a refusal is appended as SenderRejected).
    let mut posted = 0usize;
    let accepted = wait_for(
        "a text from the verified number to be accepted",
        Duration::from_secs(60),
        || {
            posted += 1;
            let params = sms_with(10_000 + posted, &[("From", &phone)]);
            let sid = as_map(&params)["MessageSid"].clone();
            let (http, url, env) = (http.clone(), app.base_url.clone(), &env);
            async move {
                assert_eq!(post_signed_retrying_503(&http, &url, &params).await, 200);
                accepted_sids(env).await.contains(&sid).then_some(sid)
            }
        },
    )
    .await;
    let sids = accepted_sids(&env).await;
    assert_eq!(
        sids,
        vec![accepted],
        "exactly the accepted text is appended, once"
    );
    eprintln!("accepted after {posted} text(s)");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_miss_does_not_outlive_the_link_reaching_the_projection() {
    let env = TestEnv::new().await;
    let settings = env.settings.clone();
    let redis = deadpool_redis::Config::from_url(settings.redis.url.expose_secret())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    // A directory that does not follow the topic: only the projection can tell it.
    let directory = smsflow::phones::PhoneDirectory::new(
        &settings.phones,
        smsflow::store::SharedSession::new(&settings.cql),
        redis,
        &settings.kafka.topic_prefix,
    );
    let phone = "+15105550164";
    assert_eq!(
        directory.lookup(phone).await.unwrap(),
        None,
        "unknown before the link"
    );

    smsflow::cli::phones::link(&patient(&settings), phone, "hana", true, false)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let session = env.cql().await;
    let projection =
        smsflow::projector::PhonesProjection::new(session.clone(), &settings.cql.keyspace)
            .await
            .unwrap();
    let task = spawn_projection(&env, session, Arc::new(projection), &shutdown);
    wait_phone_verified(&env, phone).await;
    // The miss was cached before the link; it must not hide the link for phones.cache_ttl
    // (15 min): the deadline here is 60 s.
    let state = wait_for(
        "the lookup to see the projected link",
        Duration::from_secs(60),
        || {
            let directory = &directory;
            async move { directory.lookup(phone).await.unwrap() }
        },
    )
    .await;
    assert!(state.verified);
    assert_eq!(state.user_id.as_deref(), Some("hana"));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
