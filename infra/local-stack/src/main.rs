//! `local-stack` (README, command 1): the product on this machine.
//!
//! Default: start everything, play the seed's story (demo), print the report,
//! stop. `--serve`: start everything and keep it running for manual
//! exploration (with `--demo`, after playing the story).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use local_stack::repo_root;
use local_stack::stack::{AwsTarget, LocalStack, Options, SalesforceTarget};

#[derive(Parser)]
#[command(
    about = "Runs the Modjo ⇄ Salesforce integration locally: moto, the Salesforce emulator, the five Lambda functions"
)]
struct Args {
    /// Keep the stack running (Ctrl-C stops it).
    #[arg(long)]
    serve: bool,
    /// With --serve: play the demo first.
    #[arg(long)]
    demo: bool,
    /// Port of the local HTTP API (the demo org's app expects 8080; 0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Period of the sync schedule, in seconds (15 minutes in production).
    #[arg(long, default_value_t = 60)]
    schedule_seconds: u64,
    /// Seed of the Salesforce emulator.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Where the function binaries are (cargo build puts them in target/debug).
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
    // Configuration alone picks real systems: MODJO_SALESFORCE=real (a sandbox you
    // connect in a browser) and/or MODJO_AWS=real (a deployed stack's resources).
    let salesforce = match std::env::var("MODJO_SALESFORCE").as_deref() {
        Ok("real") => SalesforceTarget::Real,
        _ => SalesforceTarget::Emulator {
            seed: args
                .seed
                .unwrap_or_else(|| root.join("infra/sf-emulator/demo-org.json")),
        },
    };
    let aws = match std::env::var("MODJO_AWS").as_deref() {
        Ok("real") => AwsTarget::Real,
        _ => AwsTarget::Moto,
    };
    let real_salesforce = matches!(salesforce, SalesforceTarget::Real);
    let options = Options {
        schedule_every: Duration::from_secs(args.schedule_seconds.max(5)),
        ..Options::new(
            args.port,
            args.bin_dir
                .unwrap_or_else(|| target_dir(&root).join("debug")),
            args.log_dir.unwrap_or_else(|| root.join(".local/logs")),
            salesforce,
            aws,
        )
    };
    println!("== Local stack");
    let stack = LocalStack::start(options).await?;
    println!(
        "HTTP API        {}/integrations/salesforce/… (JWT required, as behind API Gateway)",
        stack.api_url()
    );
    if let Some(m) = stack.moto_endpoint() {
        println!("AWS (moto)      {m}  table {}", stack.resources.table);
    }
    if let Some(emu) = &stack.emulator {
        println!(
            "Salesforce      {} (emulator, demo org; log in as admin@acme-demo.com / demo1234)",
            emu.base_url()
        );
    }
    println!(
        "functions       {} binaries, logs in {}",
        stack.functions.len(),
        stack.log_dir.display()
    );

    let play = !args.serve || args.demo;
    let result = if play && !real_salesforce {
        local_stack::demo::run(&stack, &root).await.map(|report| {
            println!(
                "Demo complete: connected={}, {} calls ({}), {} Tasks with a Modjo block, {} comments shown, {} Salesforce API calls.",
                report.connected,
                report.calls.len(),
                summary(&report.calls),
                report.tasks_with_block,
                report.comments_shown,
                report.api_calls
            );
        })
    } else {
        Ok(())
    };
    let result = match result {
        Ok(()) if args.serve => serve(&stack).await,
        other => other,
    };
    stack.shutdown().await;
    result
}

/// Prints the settings page's URL (signed in as an admin of the demo tenant)
/// and what to paste into it, then runs until Ctrl-C.
async fn serve(stack: &LocalStack) -> Result<(), String> {
    let tenant = local_stack::demo::TENANT;
    // The platform's user directory, as Modjo keeps it for a workspace.
    local_stack::demo::publish_modjo_users(stack, tenant).await?;
    println!("\nServing. Open the settings page (an admin of {tenant}, for 12 h):");
    println!("  {}", stack.console_url(tenant, "usr_admin", "admin"));
    if let (Some(emu), Some((_, key, secret))) = (
        &stack.emulator,
        stack
            .seeded_apps
            .iter()
            .find(|(org, _, _)| org == local_stack::demo::ORG),
    ) {
        println!("The demo org's connected app, to paste into the Settings tab:");
        println!("  consumer key     {key}");
        println!("  consumer secret  {secret}");
        println!("  instance URL     {}", emu.base_url());
        println!("then Link your account and log in as admin@acme-demo.com / demo1234.");
    }
    println!(
        "The API itself: curl -H \"Authorization: Bearer $TOKEN\" {}/integrations/salesforce/status",
        stack.api_url()
    );
    println!("Ctrl-C stops.");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn summary(calls: &std::collections::BTreeMap<String, String>) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for state in calls.values() {
        *counts.entry(state.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}
