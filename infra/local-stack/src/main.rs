//! `local-stack`: runs the product on this machine (README, command 1).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use local_stack::functions::{FUNCTIONS, FunctionProcess};
use local_stack::moto::MotoServer;
use local_stack::provision::provision;
use local_stack::repo_root;
use local_stack::runtime_api::InvokeError;
use serde_json::Value;
use shared::aws::AwsClients;
use shared::config::vars;

#[derive(Parser)]
#[command(about = "Runs the Modjo ⇄ Salesforce functions locally against moto")]
struct Args {
    /// Where the function binaries were built (`cargo build` puts them in target/debug).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where function logs go.
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("local-stack: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let root = repo_root();
    let bin_dir = args.bin_dir.unwrap_or_else(|| root.join("target/debug"));
    let log_dir = args.log_dir.unwrap_or_else(|| root.join(".local/logs"));

    println!("== Local stack: smoke path of the five functions against moto");
    let moto = MotoServer::start(&root)?;
    println!("moto           {} (pid {})", moto.endpoint(), moto.pid());
    let clients = AwsClients::for_endpoint(moto.endpoint()).await;
    let prefix = format!("modjo-local-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let resources = provision(&clients, &prefix, 5).await?;
    println!("table          {}", resources.table);
    println!("queues         call-events, comment-events, sync-jobs (each with a DLQ)");

    let mut env: Vec<(String, String)> = resources
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.extend(
        [
            (vars::STAGE, "local".to_string()),
            ("AWS_ENDPOINT_URL", moto.endpoint().to_string()),
            ("AWS_REGION", "eu-west-1".to_string()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            (
                vars::OAUTH_CALLBACK_URL,
                "http://127.0.0.1:8080/integrations/salesforce/callback".to_string(),
            ),
            (
                vars::MODJO_RETURN_URL,
                "http://127.0.0.1:8080/settings/integrations/salesforce".to_string(),
            ),
            ("RUST_LOG", "info".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );

    let mut processes = Vec::new();
    for name in FUNCTIONS {
        let binary = bin_dir.join(name);
        processes.push(FunctionProcess::spawn(name, &binary, &env, &log_dir).await?);
    }
    println!(
        "functions      {} processes, logs in {}",
        processes.len(),
        log_dir.display()
    );
    println!();

    let mut answered = 0;
    let mut total = 0;
    for process in &processes {
        for (file, event) in events_for(&root, process.name())? {
            total += 1;
            let outcome = process.invoke(event, Duration::from_secs(30)).await;
            let line = match &outcome {
                Ok(v) => {
                    answered += 1;
                    format!("response {}", summarize(v))
                }
                Err(InvokeError::Function(v)) => {
                    answered += 1;
                    format!("function error {}", summarize(v))
                }
                Err(e) => format!("FAILED: {e}"),
            };
            println!("{:<15} {:<28} {line}", process.name(), file);
        }
    }
    drop(processes);
    drop(moto);
    println!();
    if answered == total {
        println!("All {total} invocations reached their handler (see each answer above).");
        Ok(())
    } else {
        Err(format!(
            "{} of {total} invocations did not reach a handler",
            total - answered
        ))
    }
}

/// The sample events of `events/<function>/`, as `sam local invoke -e` would send them.
fn events_for(root: &Path, function: &str) -> Result<Vec<(String, Value)>, String> {
    let dir = root.join("events").join(function);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, value))
        })
        .collect()
}

fn summarize(v: &Value) -> String {
    let status = v.get("statusCode").map(|s| format!("HTTP {s} "));
    let location = v
        .pointer("/headers/location")
        .and_then(Value::as_str)
        .map(|l| format!("→ {l} "));
    let message = v
        .get("errorMessage")
        .or_else(|| v.get("body"))
        .map(|m| match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    [status, location, message]
        .into_iter()
        .flatten()
        .collect::<String>()
        .trim()
        .to_string()
}
