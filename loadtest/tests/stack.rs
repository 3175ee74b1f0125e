//! The bench's clean-up on the real local stack: `drop_spaces` removes one run's topics and
//! keyspace and nothing of another's, and `size` counts what is there.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use smsflow_loadtest::stack;

fn topics_with_prefix(settings: &smsflow::config::Settings, prefix: &str) -> Vec<String> {
    let admin: AdminClient<DefaultClientContext> =
        smsflow::kafka::client::base(&settings.kafka, "stack-test")
            .create()
            .expect("admin client");
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Asks through `env`'s session, whose own keyspace must exist.
async fn keyspace_exists(env: &TestEnv, keyspace: &str) -> bool {
    let rows = env
        .cql()
        .await
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .expect("query keyspaces")
        .into_rows_result()
        .expect("rows");
    rows.rows_num() > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_removes_its_topics_and_keyspace_and_leaves_another_runs() {
    let run = TestEnv::new().await;
    let other = TestEnv::new().await;
    let prefix = run.settings.kafka.topic_prefix.clone();
    let keyspace = run.settings.cql.keyspace.clone();
    let own = topics_with_prefix(&run.settings, &prefix);
    assert!(!own.is_empty(), "the run's topics exist before the drop");

    let size = stack::size(&run.settings).await.expect("stack size");
    assert!(
        size.topics >= 2 * own.len() && size.keyspaces >= 2,
        "both runs are counted: {size:?}"
    );

    let dropped = stack::drop_spaces(
        &run.settings,
        std::slice::from_ref(&prefix),
        std::slice::from_ref(&keyspace),
    )
    .await
    .expect("drop");
    let mut dropped_topics = dropped.topics.clone();
    dropped_topics.sort();
    let mut expected = own.clone();
    expected.sort();
    assert_eq!(dropped_topics, expected);
    assert_eq!(dropped.keyspaces, vec![keyspace.clone()]);

    wait_for(
        "the run's topics to leave the metadata",
        Duration::from_secs(30),
        || {
            let settings = run.settings.clone();
            let prefix = prefix.clone();
            async move {
                topics_with_prefix(&settings, &prefix)
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(!keyspace_exists(&other, &keyspace).await);
    assert!(
        !topics_with_prefix(&other.settings, &other.settings.kafka.topic_prefix).is_empty(),
        "the other run's topics stay"
    );
    assert!(keyspace_exists(&other, &other.settings.cql.keyspace).await);

    let again = stack::drop_spaces(&run.settings, &[prefix], &[keyspace])
        .await
        .expect("dropping again");
    assert!(again.topics.is_empty() && again.keyspaces.is_empty());
}
