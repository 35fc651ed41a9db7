//! `sf-emulator --port N --seed FILE`: serves the emulator until interrupted.
//! The first stdout line is `listening on http://HOST:PORT`; with
//! `--pubsub-port N` the second is `pubsub on http://HOST:PORT`.

use clap::Parser;
use sf_emulator::{Emulator, Options, SeedFile};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sf-emulator", about = "Salesforce org emulator")]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seed file (JSON, see README).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Instance URL announced to clients (default: http://HOST:PORT).
    #[arg(long)]
    public_url: Option<String>,
    /// Daily API allocation of orgs that do not set one.
    #[arg(long, default_value_t = 15_000)]
    api_limit: u64,
    /// Also serve the Pub/Sub API (gRPC, plain HTTP/2) on this port (0: any free port).
    #[arg(long)]
    pubsub_port: Option<u16>,
    /// Keepalive interval of idle Pub/Sub subscriptions, in milliseconds.
    #[arg(long, default_value_t = 270_000)]
    pubsub_keepalive_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let seed = match &args.seed {
        None => None,
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cannot read seed {}: {e}", path.display());
                    return std::process::ExitCode::from(2);
                }
            };
            match serde_json::from_str::<SeedFile>(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("bad seed {}: {e}", path.display());
                    return std::process::ExitCode::from(2);
                }
            }
        }
    };
    let options = Options {
        host: args.host,
        port: args.port,
        public_url: args.public_url,
        seed,
        default_api_limit: args.api_limit,
        pubsub: args.pubsub_port.is_some(),
        pubsub_port: args.pubsub_port.unwrap_or(0),
        pubsub_keepalive: std::time::Duration::from_millis(args.pubsub_keepalive_ms),
    };
    let emu = match Emulator::start(options).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", emu.base_url());
        if let Some(url) = emu.pubsub_url() {
            let _ = writeln!(out, "pubsub on {url}");
        }
        let _ = out.flush();
    }
    wait_for_signal().await;
    emu.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
