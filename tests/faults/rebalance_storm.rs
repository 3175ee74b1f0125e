//! A rebalance storm.

use super::*;

/// Echoes every message; run by the child processes of the storm test.
struct Storm;

impl Stage for Storm {
    const NAME: &'static str = "storm";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        Ok(echo(&input.event))
    }
}

/// Not a test: one stage instance of the storm, started and killed by
/// `a_rebalance_storm_of_three_instances_outputs_each_input_exactly_once`.
#[test]
#[ignore = "runs only as a child process of the rebalance storm test"]
fn child_storm_stage() {
    if std::env::var("FAULTS_TEST_CHILD").is_err() {
        return;
    }
    let settings = Settings::load(None).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        smsflow::shutdown::install(shutdown.clone());
        run_stage(settings.kafka, settings.stages, Arc::new(Storm), shutdown)
            .await
            .unwrap();
    });
}

fn spawn_storm_instance(env: &TestEnv, instance: usize) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rebalance_storm::child_storm_stage",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.child_env())
        .env("SMSFLOW_STAGES__INSTANCE_ID", format!("storm-{instance}"))
        .env("SMSFLOW_STAGES__BATCH_MAX", "50")
        .env("FAULTS_TEST_CHILD", "1")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A small xorshift generator: the storm's schedule is random, and its seed is printed so a
/// failing schedule can be run again (`FAULTS_STORM_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_storm_of_three_instances_outputs_each_input_exactly_once() {
    let env = TestEnv::new().await;
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    let seed = std::env::var("FAULTS_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| smsflow::clock::now_micros() as u64 | 1);
    eprintln!("storm seed {seed}");
    let mut rng = Rng(seed);
    let n = 2000usize;
    let mut instances: Vec<Option<std::process::Child>> = (0..3).map(|_| None).collect();
    let (mut kills, mut starts) = (0usize, 0usize);
    // 20 steps: 100 more messages each, then start or SIGKILL a random instance, then a
    // random pause of 0.3 to 3 s (the storm's cadence, not a wait for a condition).
    for step in 0..20 {
        produce_messages(&producer, &input_topic, step * 100..(step + 1) * 100).await;
        let i = rng.next(3) as usize;
        match instances[i].take() {
            Some(mut child) => {
                child.kill().unwrap();
                let _ = child.wait();
                kills += 1;
            }
            None => {
                instances[i] = Some(spawn_storm_instance(&env, i));
                starts += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.next(2700))).await;
    }
    // Calm: every instance runs until the input is consumed.
    for (i, slot) in instances.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(spawn_storm_instance(&env, i));
            starts += 1;
        }
    }
    eprintln!("storm: {starts} starts, {kills} SIGKILLs");
    assert!(kills > 0, "the storm killed something (seed {seed})");
    wait_for_zero_lag_within(
        &env,
        &format!("{}smsflow-storm", env.settings.kafka.topic_prefix),
        &input_topic,
        Duration::from_secs(300),
    )
    .await;

    let per_sid = outputs_per_sid(&env).await;
    let total: usize = per_sid.values().sum();
    let doubled = per_sid.values().filter(|c| **c > 1).count();
    assert_eq!(per_sid.len(), n, "every input has an output (seed {seed})");
    assert_eq!(doubled, 0, "no output twice (seed {seed})");
    assert_eq!(total, n, "exactly {n} outputs (seed {seed})");
    assert!(dead_letters(&env).await.is_empty());

    for child in instances.iter_mut().flatten() {
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
    for child in instances.iter_mut().flatten() {
        let status = wait_for(
            "an instance to exit on SIGTERM",
            Duration::from_secs(60),
            || {
                let s = child.try_wait().unwrap();
                async move { s }
            },
        )
        .await;
        assert!(status.success(), "{status:?}");
    }
}
