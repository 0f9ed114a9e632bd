//! Worker processes, as the controller sees them: spawn, signal (SIGSTOP, SIGCONT, SIGKILL),
//! send commands, and forward their log lines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::event::Line;
use crate::workload::{Broken, WorkerArgs};
use crate::ChaosError;

/// One running worker process (one incarnation of a worker).
#[derive(Debug)]
pub struct WorkerProc {
    /// The worker's number.
    pub worker: usize,
    /// Its incarnation.
    pub inc: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    paused: bool,
}

impl WorkerProc {
    /// Starts `exe` with `args`; its log lines go to `lines`, its stderr to `stderr_file`.
    /// `broken` is passed on in [`Broken::ENV`].
    ///
    /// # Errors
    /// [`ChaosError::Spawn`] if the process cannot be started.
    pub fn spawn(
        exe: &Path,
        args: &WorkerArgs,
        broken: Option<&str>,
        stderr_file: &Path,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<WorkerProc, ChaosError> {
        let spawn_err = |e: std::io::Error| ChaosError::Spawn(format!("{}: {e}", exe.display()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_file)
            .map_err(spawn_err)?;
        let mut command = Command::new(exe);
        command
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            // The controller's end is the worker's end, however the controller ends: dropped
            // here, or its stdin closes (the worker exits on end of file).
            .kill_on_drop(true);
        match broken {
            Some(mode) => command.env(Broken::ENV, mode),
            None => command.env_remove(Broken::ENV),
        };
        let mut child = command.spawn().map_err(spawn_err)?;
        let pid = child
            .id()
            .ok_or_else(|| ChaosError::Spawn("the worker exited at once".into()))?;
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(text)) = reader.next_line().await {
                    if let Some(line) = Line::parse(&text) {
                        if lines.send(line).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        Ok(WorkerProc {
            worker: args.worker,
            inc: args.inc,
            child,
            stdin,
            pid,
            paused: false,
        })
    }

    /// SIGSTOP: the whole process freezes (runtime, timers, its own proxy).
    ///
    /// # Errors
    /// [`ChaosError::Signal`] if `kill` fails.
    pub fn pause(&mut self) -> Result<(), ChaosError> {
        signal(self.pid, "STOP")?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT.
    ///
    /// # Errors
    /// [`ChaosError::Signal`] if `kill` fails.
    pub fn resume(&mut self) -> Result<(), ChaosError> {
        signal(self.pid, "CONT")?;
        self.paused = false;
        Ok(())
    }

    /// Whether the process is stopped by [`WorkerProc::pause`].
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGKILL, and reaps the process.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends one command line (`stop`, `expire`, `exit`).
    ///
    /// # Errors
    /// [`ChaosError::Spawn`] if the worker's stdin is closed (it exited).
    pub async fn send(&mut self, command: &str) -> Result<(), ChaosError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| ChaosError::Spawn("the worker's stdin is closed".into()))?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| {
                ChaosError::Spawn(format!("cannot send {command:?} to worker {}: {e}", self.worker))
            })?;
        stdin
            .flush()
            .await
            .map_err(|e| ChaosError::Spawn(format!("cannot send {command:?}: {e}")))
    }

    /// Waits up to `timeout` for the process to exit; kills it if it does not. Returns whether
    /// it exited by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        if self.paused {
            let _ = self.resume();
        }
        // End of file on its stdin makes a worker exit even if it missed `exit`.
        self.stdin = None;
        if tokio::time::timeout(timeout, self.child.wait()).await.is_ok() {
            return true;
        }
        self.kill().await;
        false
    }
}

fn signal(pid: u32, sig: &str) -> Result<(), ChaosError> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| ChaosError::Signal(format!("kill -{sig} {pid}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ChaosError::Signal(format!("kill -{sig} {pid} failed ({status})")))
    }
}
