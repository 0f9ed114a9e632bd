//! The one process-launching core shared by standalone servers and ensemble members: finding
//! `java` and the ZooKeeper jars, free ports, the four-letter-word client, and the `sh` wrapper
//! that ties a JVM's life to ours.
//!
//! # The wrapper
//!
//! Every JVM is started by a tiny `sh` script whose stdin is a pipe held by this process. The
//! script starts `java` in the background, prints its pid, then reads commands from stdin. When
//! stdin reaches end-of-file — because the handle was dropped, or because this process died in
//! any way at all, SIGKILL included, since the kernel closes the pipe — the script SIGKILLs the
//! JVM, reaps it and removes the server's directory. Statics are never dropped, so this is what
//! cleans up after [`ZkServer::shared`](super::ZkServer::shared).
//!
//! Commands (one per line) and replies:
//! * `wait` — block until the JVM exits, reply `exited STATUS`;
//! * `keep` — do not remove the directory at the end (a restarted server takes it over), reply `kept`.
//!
//! The script runs in a process group of its own, so a Ctrl-C in the terminal reaches the test
//! binary only, whose death then closes the pipe.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::TestkitError;

/// The wrapper script; see the module docs. `$1` = log file, `$2` = directory, the rest = the command.
const WRAPPER: &str = r#"
log=$1; dir=$2; shift 2
exec 2>>"$log"
"$@" >>"$log" 2>&1 </dev/null &
pid=$!
cleanup=1
finish() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=; fi
  if [ "$cleanup" = 1 ]; then rm -rf "$dir"; fi
}
trap '' PIPE INT HUP QUIT
trap 'finish; exit 143' TERM
echo "pid $pid"
while read -r cmd; do
  case $cmd in
    wait)
      if [ -n "$pid" ]; then wait "$pid"; status=$?; pid=; fi
      echo "exited ${status:-?}" ;;
    keep) cleanup=0; echo "kept" ;;
  esac
done
finish
"#;

/// Where `java` and the ZooKeeper classes are.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    java: PathBuf,
    classpath: String,
}

impl Launcher {
    /// Finds `java` and the jars (cached after the first success).
    pub(crate) fn get() -> Result<&'static Launcher, TestkitError> {
        static LAUNCHER: OnceLock<Launcher> = OnceLock::new();
        if let Some(found) = LAUNCHER.get() {
            return Ok(found);
        }
        let found = Launcher {
            java: find_java()?,
            classpath: find_classpath()?,
        };
        Ok(LAUNCHER.get_or_init(|| found))
    }
}

fn find_java() -> Result<PathBuf, TestkitError> {
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let java = Path::new(&home).join("bin").join("java");
        if java.is_file() {
            return Ok(java);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
        .ok_or(TestkitError::JavaNotFound)
}

/// `lib/*.jar` and `zookeeper-*.jar` of an unpacked distribution, if it holds a ZooKeeper jar.
fn distribution_jars(home: &Path) -> Option<Vec<PathBuf>> {
    let mut jars = Vec::new();
    let mut list = |dir: &Path, only_zookeeper: bool| {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".jar") && (!only_zookeeper || name.starts_with("zookeeper")) {
                    jars.push(entry.path());
                }
            }
        }
    };
    list(&home.join("lib"), false);
    list(home, true);
    jars.sort();
    let has_server = jars.iter().any(|jar| {
        jar.file_name()
            .map(|n| n.to_string_lossy().starts_with("zookeeper"))
            .unwrap_or(false)
    });
    has_server.then_some(jars)
}

fn join_classpath(jars: &[PathBuf]) -> String {
    jars.iter()
        .map(|j| j.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn find_classpath() -> Result<String, TestkitError> {
    if let Some(home) = std::env::var_os("ZOOKEEPER_HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        return distribution_jars(&home)
            .map(|jars| join_classpath(&jars))
            .ok_or_else(|| TestkitError::ZooKeeperNotFound {
                searched: format!(
                    "ZOOKEEPER_HOME={} has no zookeeper-*.jar in it or in its lib/",
                    home.display()
                ),
            });
    }
    let home = Path::new("/usr/share/zookeeper");
    if let Some(jars) = distribution_jars(home) {
        return Ok(join_classpath(&jars));
    }
    // Debian: zookeeper.jar's manifest pulls in its dependencies; the log4j binding is optional.
    let java_dir = Path::new("/usr/share/java");
    let server = java_dir.join("zookeeper.jar");
    if server.is_file() && java_dir.join("zookeeper-jute.jar").is_file() {
        let mut jars = vec![server];
        let binding = [java_dir.join("slf4j-log4j12.jar"), java_dir.join("log4j-1.2.jar")];
        if binding.iter().all(|j| j.is_file()) {
            jars.extend(binding);
        }
        return Ok(join_classpath(&jars));
    }
    Err(TestkitError::ZooKeeperNotFound {
        searched: "ZOOKEEPER_HOME is not set; looked in /usr/share/zookeeper{,/lib} and for \
                   /usr/share/java/zookeeper.jar"
            .to_owned(),
    })
}

/// A loopback port nothing listens on right now, not handed out before by this process.
///
/// The listener is dropped before the port is used, so another process may take it in between:
/// callers retry with a new port when the server reports the address in use.
pub(crate) fn free_port() -> io::Result<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no fresh loopback port found",
    ))
}

/// Sends a ZooKeeper four-letter word (`ruok`, `srvr`, `stat`, `mntr`, `dump`, …) to `addr`
/// and returns the whole reply, waiting at most 2 s in all.
///
/// Test servers enable every four-letter word (`4lw.commands.whitelist=*`).
///
/// # Errors
/// Connection refused, reset or timed out (a paused server accepts the connection but never
/// answers: the read times out).
pub fn four_letter_word(addr: SocketAddr, word: &str) -> io::Result<String> {
    four_letter_word_timeout(addr, word, Duration::from_secs(2))
}

/// [`four_letter_word`] with an explicit bound on the whole exchange.
///
/// # Errors
/// As [`four_letter_word`]; a timeout shows as [`io::ErrorKind::TimedOut`] or
/// [`io::ErrorKind::WouldBlock`].
pub fn four_letter_word_timeout(addr: SocketAddr, word: &str, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, format!("{word} to {addr} timed out")))
    };
    let mut stream = TcpStream::connect_timeout(&addr, remaining()?)?;
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(word.as_bytes())?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut chunk)? {
            0 => break,
            n => reply.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `pid` names a live (possibly stopped) process, zombies excluded where `/proc` tells.
pub(crate) fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // "pid (comm) S …": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        return !matches!(state, None | Some('Z' | 'X' | 'x'));
    }
    signal(pid, "0").is_ok()
}

/// Waits (at most 5 s) until all threads of `pid` are stopped (`stopped`) or none is; a no-op
/// where `/proc` does not tell.
fn wait_for_threads(pid: u32, stopped: bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let task_dir = format!("/proc/{pid}/task");
    while std::time::Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(&task_dir) else {
            return;
        };
        let all_match = tasks.flatten().all(|task| {
            let state = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.trim_start().chars().next())
                });
            match state {
                Some('T' | 't') => stopped,
                Some(_) => !stopped,
                None => true, // the thread is gone
            }
        });
        if all_match {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `kill -SIG pid`.
pub(crate) fn signal(pid: u32, sig: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{sig} {pid} failed ({status})")))
    }
}

/// A JVM started through the wrapper.
#[derive(Debug)]
pub(crate) struct JavaProcess {
    wrapper: Child,
    control: Option<ChildStdin>,
    replies: Receiver<String>,
    pid: u32,
    exited: bool,
    wait_pending: bool,
    paused: bool,
}

impl JavaProcess {
    /// Starts `java ARGS` with output appended to `log`; `dir` is removed when the wrapper ends
    /// (unless [`JavaProcess::release`] keeps it).
    pub(crate) fn spawn(dir: &Path, log: &Path, java_args: &[String]) -> Result<JavaProcess, TestkitError> {
        let launcher = Launcher::get()?;
        let mut wrapper = Command::new("/bin/sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("mazurka-zk")
            .arg(log)
            .arg(dir)
            .arg(&launcher.java)
            .arg("-cp")
            .arg(&launcher.classpath)
            .args(java_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| TestkitError::io("cannot run /bin/sh to start java", e))?;
        let control = wrapper.stdin.take();
        let (tx, replies) = mpsc::channel();
        if let Some(stdout) = wrapper.stdout.take() {
            let reader = std::thread::Builder::new()
                .name("mazurka-zk-wrapper".into())
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = reader {
                let _ = wrapper.kill();
                let _ = wrapper.wait();
                return Err(TestkitError::io("cannot start a thread", e));
            }
        }
        let mut process = JavaProcess {
            wrapper,
            control,
            replies,
            pid: 0,
            exited: false,
            wait_pending: false,
            paused: false,
        };
        let pid = process.expect("pid ", Duration::from_secs(10));
        match pid
            .as_deref()
            .and_then(|l| l.strip_prefix("pid "))
            .and_then(|p| p.trim().parse().ok())
        {
            Some(pid) => {
                process.pid = pid;
                Ok(process)
            }
            None => {
                process.exited = true;
                Err(TestkitError::io(
                    "the java launcher did not report a pid",
                    io::Error::other(tail(log, 20)),
                ))
            }
        }
    }

    /// Waits for a reply line starting with `prefix`, noting `exited` replies on the way.
    fn expect(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(line) => {
                    if line.starts_with("exited") {
                        self.exited = true;
                        self.wait_pending = false;
                    }
                    if line.starts_with(prefix) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    // The wrapper is gone, and the JVM with it.
                    self.exited = true;
                    self.wait_pending = false;
                    return None;
                }
            }
        }
    }

    fn command(&mut self, cmd: &str) -> bool {
        match self.control.as_mut() {
            Some(pipe) => pipe
                .write_all(format!("{cmd}\n").as_bytes())
                .and_then(|()| pipe.flush())
                .is_ok(),
            None => false,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused && self.is_alive()
    }

    /// Whether the JVM is alive (a stopped JVM is alive).
    pub(crate) fn is_alive(&self) -> bool {
        !self.exited && process_alive(self.pid)
    }

    pub(crate) fn signal(&mut self, sig: &str) -> io::Result<()> {
        if self.exited {
            return Err(io::Error::other("the process has exited"));
        }
        signal(self.pid, sig)?;
        match sig {
            "STOP" => {
                self.paused = true;
                // A signal is delivered asynchronously: wait until every thread has stopped, so
                // that "paused" means the server answers nothing from here on.
                wait_for_threads(self.pid, true);
            }
            "CONT" => {
                self.paused = false;
                wait_for_threads(self.pid, false);
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits until the JVM has exited and been reaped; `false` if it still runs after `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        if self.exited {
            return true;
        }
        if !self.wait_pending {
            if !self.command("wait") {
                self.exited = true;
                return true;
            }
            self.wait_pending = true;
        }
        self.expect("exited", timeout);
        self.exited
    }

    /// SIGKILL and wait.
    pub(crate) fn kill(&mut self) -> bool {
        if !self.exited {
            let _ = signal(self.pid, "KILL");
        }
        self.paused = false;
        self.wait_exit(Duration::from_secs(10))
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub(crate) fn terminate(&mut self, grace: Duration) -> bool {
        if self.exited {
            return true;
        }
        let _ = signal(self.pid, "TERM");
        if self.paused {
            let _ = signal(self.pid, "CONT");
            self.paused = false;
        }
        self.wait_exit(grace) || self.kill()
    }

    /// Ends the wrapper (killing the JVM if it still runs); with `keep_dir` the directory stays.
    pub(crate) fn release(mut self, keep_dir: bool) {
        if keep_dir && self.command("keep") {
            self.expect("kept", Duration::from_secs(5));
        }
        // Drop does the rest.
    }
}

impl Drop for JavaProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = signal(self.pid, "KILL");
        }
        // End of file on the wrapper's stdin: it kills and reaps the JVM, then cleans up.
        self.control = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut nap = Duration::from_millis(1);
        loop {
            match self.wrapper.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => break,
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(20));
                }
            }
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}
