//! moto (`moto_server` from PyPI, in the project's virtualenv) on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running moto server on an ephemeral loopback port. It serves until its stdin
/// closes, so it exits when its owner is dropped or its owning process dies,
/// however that happens.
pub struct MotoServer {
    endpoint: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl MotoServer {
    /// Starts moto from `<root>/.venv`, creating the venv with
    /// `infra/scripts/bootstrap.sh` first if it is missing.
    pub fn start(root: &Path) -> Result<Self, String> {
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            let status = Command::new(root.join("infra/scripts/bootstrap.sh"))
                .status()
                .map_err(|e| format!("running infra/scripts/bootstrap.sh: {e}"))?;
            if !status.success() {
                return Err("infra/scripts/bootstrap.sh failed".into());
            }
        }
        let mut child = Command::new(&python)
            .arg(root.join("infra/scripts/moto_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("moto: no stdout")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading moto's address: {e}"))?;
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line from moto: {line:?}"))?
            .to_string();
        Ok(Self {
            endpoint,
            child,
            stdin,
        })
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing stdin asks moto to stop; kill makes sure of it.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
