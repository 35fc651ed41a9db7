//! `cold-start`: each function binary's size and init time, started as Lambda
//! starts it: a fresh process with Lambda's environment and the template's
//! configuration, against a local Runtime API. Init is what Lambda reports as
//! Init Duration: from the process start to its first poll for an invocation.
//! No event is sent and nothing is called: init makes no network request.
//!
//! infra/scripts/measure-lambda.sh runs it on release builds (BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use local_stack::functions::FUNCTIONS;
use local_stack::runtime_api::{InvokeError, RuntimeApi};
use shared::config::vars;
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Size and init time (median of --runs cold starts) of each function binary")]
struct Args {
    /// Where the binaries are: <dir>/<name>, or <dir>/<name>/bootstrap (cargo-lambda's layout).
    #[arg(long)]
    bin_dir: PathBuf,
    /// Cold starts per function.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Runs each binary through this command (space-separated), e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
    #[arg(long)]
    wrapper: Option<String>,
    /// The CA bundle given as SSL_CERT_FILE, as template.yaml does; "none" leaves it unset.
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    cert_file: String,
    /// After init, invoke the function with these JSON payloads, in order, and
    /// print how each ended (a response, a function error, or the process gone).
    #[arg(long)]
    invoke: Vec<String>,
    /// Extra environment variables (KEY=VALUE), e.g. AWS_ENDPOINT_URL for an --invoke.
    #[arg(long = "env")]
    extra_env: Vec<String>,
    /// Binaries to measure (default: the five functions), e.g. a hello-world for the harness's floor.
    names: Vec<String>,
}

/// The environment Lambda and template.yaml give every function (dummy
/// values: init reads and checks them but calls nothing).
fn environment(name: &str, api: &RuntimeApi, cert_file: &str) -> Vec<(String, String)> {
    let queue = |q: &str| format!("https://sqs.eu-west-3.amazonaws.com/123456789012/bench-{q}");
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/modjo/bench/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("AWS_REGION", "eu-west-3".into()),
        ("AWS_DEFAULT_REGION", "eu-west-3".into()),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE00".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "bench/bench/bench/bench/bench/bench/benc".into(),
        ),
        ("AWS_SESSION_TOKEN", "bench-session-token".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("_HANDLER", "bootstrap".into()),
        ("TZ", ":UTC".into()),
        (vars::STAGE, "bench".into()),
        (vars::TABLE_NAME, "modjo-bench-table".into()),
        (vars::SECRET_PREFIX, "modjo/modjo-bench/tenants/".into()),
        (vars::METRICS_NAMESPACE, "Modjo/Salesforce".into()),
        (
            "RUST_LOG",
            "info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn,rustls=warn,reqwest=warn"
                .into(),
        ),
        (
            vars::OAUTH_CALLBACK_URL,
            "https://salesforce.example.com/integrations/salesforce/callback".into(),
        ),
        (
            vars::MODJO_RETURN_URL,
            "https://app.modjo.ai/settings/integrations/salesforce".into(),
        ),
        (
            vars::STATE_SIGNING_SECRET_ID,
            "modjo/modjo-bench/oauth-state-signing-key".into(),
        ),
        (vars::CALL_EVENTS_QUEUE_URL, queue("call-events")),
        (vars::CALL_EVENTS_DLQ_URL, queue("call-events-dlq")),
        (vars::COMMENT_EVENTS_QUEUE_URL, queue("comment-events")),
        (vars::COMMENT_EVENTS_DLQ_URL, queue("comment-events-dlq")),
        (vars::SYNC_JOBS_QUEUE_URL, queue("sync-jobs")),
        (vars::SYNC_JOBS_DLQ_URL, queue("sync-jobs-dlq")),
        (vars::SYNC_PAUSE_AT_PERCENT, "80".into()),
        (vars::CALL_LOGGING_DEFER_AT_PERCENT, "95".into()),
    ];
    if cert_file != "none" {
        env.push((vars::SSL_CERT_FILE, cert_file.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn binary(dir: &Path, name: &str) -> PathBuf {
    let nested = dir.join(name).join("bootstrap");
    if nested.is_file() {
        nested
    } else {
        dir.join(name)
    }
}

/// One cold start: the time from spawning the process to its first poll.
async fn cold_start(args: &Args, name: &str, path: &Path) -> Result<Duration, String> {
    let api = RuntimeApi::start(name)
        .await
        .map_err(|e| format!("{name}: runtime API: {e}"))?;
    let mut words: Vec<String> = args
        .wrapper
        .as_deref()
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    words.push(path.display().to_string());
    let mut command = tokio::process::Command::new(&words[0]);
    command
        .args(&words[1..])
        .env_clear()
        .envs(environment(name, &api, &args.cert_file))
        .envs(args.extra_env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("{name}: cannot start {}: {e}", path.display()))?;
    let polled = tokio::time::timeout(Duration::from_secs(30), api.first_poll()).await;
    for payload in &args.invoke {
        let event: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| format!("--invoke {payload}: {e}"))?;
        let answer = match api.invoke(event, Duration::from_secs(10)).await {
            Ok(v) => format!("response {v}"),
            Err(InvokeError::Function(v)) => format!("function error reported {v}"),
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                format!(
                    "{e}; the process {}",
                    status.map_or("still runs".into(), |s| format!("ended ({s})"))
                )
            }
        };
        println!("{name}: invoke {payload}: {answer}");
    }
    let _ = child.kill().await;
    match polled {
        Ok(Ok(at)) => Ok(at - started),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => Err(format!("{name}: no poll within 30 s")),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let names: Vec<String> = if args.names.is_empty() {
        FUNCTIONS.iter().map(|s| s.to_string()).collect()
    } else {
        args.names.clone()
    };
    println!("| function | size (MB) | init median (ms) | init runs (ms) |");
    println!("|---|---:|---:|---|");
    let mut failed = false;
    for name in &names {
        let path = binary(&args.bin_dir, name);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len() as f64 / 1_000_000.0,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let mut runs = Vec::new();
        for _ in 0..args.runs.max(1) {
            match cold_start(&args, name, &path).await {
                Ok(d) => runs.push(d),
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                    break;
                }
            }
        }
        if runs.is_empty() {
            continue;
        }
        let shown: Vec<String> = runs
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "| {name} | {size:.1} | {:.1} | {} |",
            median(runs.clone()).as_secs_f64() * 1000.0,
            shown.join(", ")
        );
    }
    if failed {
        std::process::exit(1);
    }
}
