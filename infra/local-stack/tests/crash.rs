//! A function process that dies mid-invocation, as Lambda handles it: the
//! invocation fails at once (not after its timeout) and a fresh process serves
//! the next one.

use std::process::Command;
use std::time::Duration;

use local_stack::runtime_api::InvokeError;
use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_process_fails_its_invocation_and_is_replaced() {
    let root = local_stack::repo_root();
    let log_dir = std::env::temp_dir().join(format!("modjo-crash-logs-{}", std::process::id()));
    let stack = LocalStack::start(Options {
        schedule_every: Duration::from_secs(3600),
        ..Options::new(
            0,
            local_stack::functions::built_for_tests(),
            log_dir,
            SalesforceTarget::Emulator {
                seed: root.join("infra/sf-emulator/demo-org.json"),
            },
            AwsTarget::Moto,
        )
    })
    .await
    .expect("stack starts");
    let logger = stack.functions["call-logger"].clone();
    assert!(
        logger.ready(Duration::from_secs(30)).await,
        "the logger initialises"
    );
    let first_pid = logger.pid();
    // A batch the logger refuses at once (not a call), delivered as Lambda would.
    let batch = json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "body": "{not a call",
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:000000000000:q",
        "awsRegion": "eu-west-1"
    }]});
    // Frozen while it holds the invocation, then killed: it can never answer.
    let frozen = Command::new("kill")
        .args(["-STOP", &first_pid.to_string()])
        .status()
        .expect("kill -STOP");
    assert!(frozen.success());
    let pending = {
        let logger = logger.clone();
        let batch = batch.clone();
        tokio::spawn(async move { logger.invoke(batch, Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = tokio::time::Instant::now();
    logger.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("the invocation ends with the process, not after its 120 s timeout")
        .expect("join");
    match outcome {
        Err(InvokeError::Crashed(why)) => assert!(why.contains("exited"), "{why}"),
        other => panic!("expected a failed invocation, got {other:?}"),
    }
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    // A new process serves the next invocation.
    let answer = logger
        .invoke(batch, Duration::from_secs(60))
        .await
        .expect("the replacement answers");
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(logger.restarts(), 1);
    assert_ne!(logger.pid(), first_pid);
    stack.shutdown().await;
}
