//! The five function binaries, each running as its own process against its own
//! local Runtime API endpoint, as Lambda runs them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::runtime_api::{InvokeError, RuntimeApi};

/// The functions of `template.yaml`, by binary name.
pub const FUNCTIONS: [&str; 5] = [
    "integration-api",
    "oauth-callback",
    "scheduled-sync",
    "call-logger",
    "comment-sync",
];

/// A running function process.
pub struct FunctionProcess {
    name: String,
    child: Child,
    api: RuntimeApi,
    log: PathBuf,
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
        let api = RuntimeApi::start(name)
            .await
            .map_err(|e| format!("{name}: runtime API: {e}"))?;
        std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(binary)
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
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("{name}: cannot start {}: {e}", binary.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            api,
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Result<Value, InvokeError> {
        self.api.invoke(payload, timeout).await
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
