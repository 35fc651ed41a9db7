//! The five function binaries, each running as its own process against its own
//! local Runtime API endpoint, as Lambda runs them. As in Lambda, a process that
//! dies fails the invocation it was running and a fresh one takes its place.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::runtime_api::{InvokeError, RuntimeApi};

/// The functions of `template.yaml`, by binary name.
pub const FUNCTIONS: [&str; 5] = [
    "integration-api",
    "oauth-callback",
    "scheduled-sync",
    "call-logger",
    "comment-sync",
];

/// Builds the function binaries `names` with cargo's `profile` (a no-op when
/// they are up to date) into the target directory the running test or bench
/// lives in; returns the directory that holds them. Built every time, not only
/// when missing, so that a run never drives binaries older than its code.
pub fn build(names: &[&str], profile: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let target_dir = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<exe>")
        .to_path_buf();
    let mut build = std::process::Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--profile", profile, "--target-dir"])
        .arg(&target_dir);
    for name in names {
        build.args(["-p", name]);
    }
    let status = build
        .current_dir(crate::repo_root())
        .status()
        .expect("cargo build");
    assert!(status.success(), "building {names:?} failed");
    target_dir.join(match profile {
        "dev" | "test" => "debug",
        "release" | "bench" => "release",
        other => other,
    })
}

/// The five function binaries as the tests drive them (the `dev` profile).
pub fn built_for_tests() -> PathBuf {
    build(&FUNCTIONS, "dev")
}

/// A process that dies sooner than this after starting is restarted after a
/// growing pause (a function that cannot initialise does not spin).
const QUICK_DEATH: Duration = Duration::from_secs(2);

/// A running function: its Runtime API endpoint and the process serving it,
/// restarted when it dies.
pub struct FunctionProcess {
    name: String,
    api: Arc<RuntimeApi>,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    kill: Arc<Notify>,
    log: PathBuf,
    supervisor: JoinHandle<()>,
}

impl FunctionProcess {
    /// Starts `binary` with `env` plus the variables Lambda itself sets. Its stdout
    /// and stderr (JSON logs, EMF metrics) go to `<log_dir>/<name>.log`.
    pub async fn spawn(
        name: &str,
        binary: &Path,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Self, String> {
        let api = Arc::new(
            RuntimeApi::start(name)
                .await
                .map_err(|e| format!("{name}: runtime API: {e}"))?,
        );
        std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(std::env::var("PATH").map(|p| ("PATH".to_string(), p)))
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let first = start(&mut command, &log)
            .map_err(|e| format!("{name}: cannot start {}: {e}", binary.display()))?;
        let pid = Arc::new(AtomicU32::new(first.id().unwrap_or(0)));
        let restarts = Arc::new(AtomicU32::new(0));
        let kill = Arc::new(Notify::new());
        let supervisor = tokio::spawn(supervise(
            name.to_string(),
            command,
            first,
            log.clone(),
            api.clone(),
            pid.clone(),
            restarts.clone(),
            kill.clone(),
        ));
        Ok(Self {
            name: name.to_string(),
            api,
            pid,
            restarts,
            kill,
            log,
            supervisor,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the process serving now.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// How many times a dead process was replaced.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the serving process at once (SIGKILL), as a crash would: its
    /// invocation fails and a fresh process takes over.
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Waits until the process has initialised and asks for work (false after `timeout`).
    pub async fn ready(&self, timeout: Duration) -> bool {
        self.api.ready(timeout).await
    }

    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Result<Value, InvokeError> {
        self.api.invoke(payload, timeout).await
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        // The supervisor owns the child, spawned with kill_on_drop.
        self.supervisor.abort();
    }
}

fn start(command: &mut Command, log: &Path) -> std::io::Result<tokio::process::Child> {
    let out = OpenOptions::new().append(true).open(log)?;
    let err = out.try_clone()?;
    command
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
}

/// Keeps one process serving: when it exits, the invocation it held fails (as
/// Lambda reports a runtime exit) and a new process starts.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    name: String,
    mut command: Command,
    mut child: tokio::process::Child,
    log: PathBuf,
    api: Arc<RuntimeApi>,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    kill: Arc<Notify>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let status = tokio::select! {
            status = child.wait() => status,
            () = kill.notified() => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let why = match status {
            Ok(s) => format!("the process exited ({s})"),
            Err(e) => format!("the process could not be waited for ({e})"),
        };
        tracing::warn!(function = %name, "{why}; starting a new one");
        api.fail_inflight(&why).await;
        pause = if started.elapsed() < QUICK_DEATH {
            (pause * 2).min(Duration::from_secs(10))
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(pause).await;
        match start(&mut command, &log) {
            Ok(next) => {
                pid.store(next.id().unwrap_or(0), Ordering::Relaxed);
                restarts.fetch_add(1, Ordering::Relaxed);
                child = next;
            }
            Err(e) => {
                tracing::error!(function = %name, error = %e, "cannot restart the function");
                return;
            }
        }
    }
}
