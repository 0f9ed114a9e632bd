//! One ZooKeeper server process: standalone, or a member of a [`ZkEnsemble`](super::ZkEnsemble).

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ensemble::ZkEnsemble;
use super::process::{four_letter_word_timeout, free_port, tail, JavaProcess};
use super::TestkitError;

/// How long a probe (`ruok`, `srvr`) may take while waiting for a server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `stop()` waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts with a fresh port when the one picked was taken in the meantime.
pub(crate) const PORT_ATTEMPTS: usize = 3;

/// What a server says it is, from the `Mode:` line of its `srvr` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMode {
    /// A single server, not part of a quorum.
    Standalone,
    /// The leader of an ensemble.
    Leader,
    /// A follower in an ensemble.
    Follower,
    /// A non-voting member of an ensemble.
    Observer,
    /// Anything else the server reported.
    Other(String),
}

impl ServerMode {
    /// Reads the `Mode:` line of a `srvr` (or `stat`) reply; `None` when there is none, as when
    /// the server is not serving ("This ZooKeeper instance is not currently serving requests").
    #[must_use]
    pub fn from_srvr(reply: &str) -> Option<ServerMode> {
        let mode = reply.lines().find_map(|line| line.strip_prefix("Mode:"))?.trim();
        Some(match mode {
            "standalone" => ServerMode::Standalone,
            "leader" => ServerMode::Leader,
            "follower" => ServerMode::Follower,
            "observer" => ServerMode::Observer,
            other => ServerMode::Other(other.to_owned()),
        })
    }
}

/// Settings for test servers; start one with [`ZkServerBuilder::start`] or an ensemble with
/// [`ZkServerBuilder::start_ensemble`].
///
/// The defaults aim at fast, small, short-session test servers: `tickTime` 200 ms (sessions of
/// 0.4–4 s), a 64 MiB heap, no fsync.
#[derive(Debug, Clone)]
pub struct ZkServerBuilder {
    tick_time: Duration,
    heap_mb: u32,
    min_session_timeout: Option<Duration>,
    max_session_timeout: Option<Duration>,
    init_limit: u32,
    sync_limit: u32,
    start_timeout: Duration,
    extra_config: Vec<(String, String)>,
    jvm_args: Vec<String>,
}

impl Default for ZkServerBuilder {
    fn default() -> Self {
        ZkServerBuilder {
            tick_time: Duration::from_millis(200),
            heap_mb: 64,
            min_session_timeout: None,
            max_session_timeout: None,
            init_limit: 50,
            sync_limit: 10,
            start_timeout: Duration::from_secs(30),
            extra_config: Vec::new(),
            jvm_args: Vec::new(),
        }
    }
}

impl ZkServerBuilder {
    /// The defaults (same as [`ZkServer::builder`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// ZooKeeper's `tickTime` (default 200 ms). Session timeouts are clamped by the server to
    /// 2–20 ticks unless [`min_session_timeout`](Self::min_session_timeout) /
    /// [`max_session_timeout`](Self::max_session_timeout) say otherwise.
    #[must_use]
    pub fn tick_time(mut self, tick: Duration) -> Self {
        self.tick_time = tick;
        self
    }

    /// The JVM's maximum heap in MiB (default 64; at least 16).
    #[must_use]
    pub fn heap_mb(mut self, mb: u32) -> Self {
        self.heap_mb = mb;
        self
    }

    /// The shortest session timeout the server grants (default 2 × tickTime).
    #[must_use]
    pub fn min_session_timeout(mut self, timeout: Duration) -> Self {
        self.min_session_timeout = Some(timeout);
        self
    }

    /// The longest session timeout the server grants (default 20 × tickTime).
    #[must_use]
    pub fn max_session_timeout(mut self, timeout: Duration) -> Self {
        self.max_session_timeout = Some(timeout);
        self
    }

    /// Ensembles only: ticks a follower may take to connect and sync to a leader (default 50,
    /// generous so that start-up on a few busy cores succeeds).
    #[must_use]
    pub fn init_limit(mut self, ticks: u32) -> Self {
        self.init_limit = ticks;
        self
    }

    /// Ensembles only: ticks a follower may lag behind the leader before it is dropped (default 10).
    #[must_use]
    pub fn sync_limit(mut self, ticks: u32) -> Self {
        self.sync_limit = ticks;
        self
    }

    /// How long [`start`](Self::start) and [`ZkServer::restart`] wait for the server to answer
    /// (default 30 s).
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// An extra `key=value` line for `zoo.cfg` (unknown keys become `zookeeper.KEY` system
    /// properties, as ZooKeeper does).
    #[must_use]
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_config.push((key.into(), value.into()));
        self
    }

    /// An extra JVM argument (`-Dzookeeper.…=…`, `-Xlog:…`).
    #[must_use]
    pub fn jvm_arg(mut self, arg: impl Into<String>) -> Self {
        self.jvm_args.push(arg.into());
        self
    }

    /// Starts a standalone server on a free loopback port and waits until it answers.
    ///
    /// # Errors
    /// No `java` or no ZooKeeper jars ([`TestkitError::JavaNotFound`],
    /// [`TestkitError::ZooKeeperNotFound`]); the server did not answer `ruok`/`srvr` within the
    /// start timeout, or exited ([`TestkitError::StartFailed`], with the tail of its log).
    pub fn start(self) -> Result<ZkServer, TestkitError> {
        self.validate()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port().map_err(|e| TestkitError::io("cannot pick a free port", e))?;
            let server = ZkServer::prepare(&self, Role::Standalone, port)?;
            server.launch()?;
            match server.wait_ready(Instant::now() + self.start_timeout) {
                Ok(_) => return Ok(server),
                Err(_) if attempt < PORT_ATTEMPTS && server.address_in_use() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts an ensemble of `n` servers (see [`ZkEnsemble::start`]).
    ///
    /// # Errors
    /// As [`ZkEnsemble::start`].
    pub fn start_ensemble(self, n: usize) -> Result<ZkEnsemble, TestkitError> {
        self.validate()?;
        ZkEnsemble::start_with(&self, n)
    }

    pub(crate) fn start_timeout_value(&self) -> Duration {
        self.start_timeout
    }

    fn validate(&self) -> Result<(), TestkitError> {
        let tick = self.tick_time.as_millis();
        if tick == 0 || tick > i32::MAX as u128 {
            return Err(TestkitError::Config(format!(
                "tick_time must be 1 ms or more, got {:?}",
                self.tick_time
            )));
        }
        if self.heap_mb < 16 {
            return Err(TestkitError::Config(format!(
                "heap_mb must be at least 16, got {}",
                self.heap_mb
            )));
        }
        if let (Some(min), Some(max)) = (self.min_session_timeout, self.max_session_timeout) {
            if min > max {
                return Err(TestkitError::Config(format!(
                    "min_session_timeout {min:?} exceeds max_session_timeout {max:?}"
                )));
            }
        }
        if self.init_limit == 0 || self.sync_limit == 0 {
            return Err(TestkitError::Config(
                "init_limit and sync_limit must be at least 1 tick".into(),
            ));
        }
        Ok(())
    }
}

/// The ports of one ensemble member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerPorts {
    pub(crate) client: u16,
    pub(crate) quorum: u16,
    pub(crate) election: u16,
}

impl PeerPorts {
    pub(crate) fn pick() -> io::Result<PeerPorts> {
        Ok(PeerPorts {
            client: free_port()?,
            quorum: free_port()?,
            election: free_port()?,
        })
    }
}

/// Standalone, or member `myid` (1-based) of an ensemble.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    Standalone,
    Member { myid: usize, peers: Vec<PeerPorts> },
}

impl Role {
    fn accepts(&self, mode: &ServerMode) -> bool {
        match self {
            Role::Standalone => *mode == ServerMode::Standalone,
            Role::Member { .. } => matches!(mode, ServerMode::Leader | ServerMode::Follower),
        }
    }

    fn expected(&self) -> &'static str {
        match self {
            Role::Standalone => "Mode: standalone",
            Role::Member { .. } => "Mode: leader or follower",
        }
    }
}

/// A real ZooKeeper server process for tests, on a loopback port with a temporary data dir.
///
/// * [`ZkServer::shared`]: one server per test binary; every test uses its own
///   [`unique_chroot`] on it. Fault injection on it is refused.
/// * [`ZkServer::start`] / [`ZkServer::builder`]: a server of your own, for tests that kill,
///   stop, pause or restart it.
///
/// The process dies with the handle, and with the test process however that dies (panic,
/// abort, SIGKILL), and its directory goes with it: see the [module docs](super).
///
/// Controls take `&self` (the process sits behind a mutex) so a server can be shared with
/// other threads, e.g. in an `Arc`. They block: call them from `spawn_blocking` inside async
/// code if blocking a runtime thread for a moment matters.
#[derive(Debug)]
pub struct ZkServer {
    addr: SocketAddr,
    dir: PathBuf,
    settings: ZkServerBuilder,
    role: Role,
    shared: bool,
    process: Mutex<Option<JavaProcess>>,
    /// Declared last: removed after the process is gone.
    _tempdir: TempDir,
}

impl ZkServer {
    /// Starts a standalone server with the default settings (see [`ZkServerBuilder`]).
    ///
    /// # Errors
    /// As [`ZkServerBuilder::start`].
    pub fn start() -> Result<ZkServer, TestkitError> {
        ZkServerBuilder::default().start()
    }

    /// Settings for a server or an ensemble.
    #[must_use]
    pub fn builder() -> ZkServerBuilder {
        ZkServerBuilder::default()
    }

    /// The server shared by all tests of this test binary, started on first use (JVM start-up
    /// costs a second or more; one server per binary keeps suites fast).
    ///
    /// Give each test its own chroot ([`unique_chroot`]) so that tests running in parallel do
    /// not see each other's znodes. Only the server process is shared, never a client: a
    /// ZooKeeper client dies with the tokio runtime it was created on, and each `#[tokio::test]`
    /// has its own.
    ///
    /// The shared server is never dropped; it is killed and its directory removed when the
    /// test process exits. Fault controls on it ([`kill`](Self::kill), [`pause`](Self::pause), …)
    /// return [`TestkitError::SharedServer`].
    ///
    /// # Errors
    /// As [`ZkServer::start`] the first time; later calls return
    /// [`TestkitError::SharedUnavailable`] with the first failure's message.
    pub fn shared() -> Result<&'static ZkServer, TestkitError> {
        static SHARED: OnceLock<Result<ZkServer, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            ZkServer::start()
                .map(|mut server| {
                    server.shared = true;
                    server
                })
                .map_err(|e| e.to_string())
        });
        shared
            .as_ref()
            .map_err(|e| TestkitError::SharedUnavailable(e.clone()))
    }

    /// Creates the directory and configuration; does not start the process.
    pub(crate) fn prepare(
        settings: &ZkServerBuilder,
        role: Role,
        client_port: u16,
    ) -> Result<ZkServer, TestkitError> {
        let tempdir = tempfile::Builder::new()
            .prefix("mazurka-zk-")
            .tempdir()
            .map_err(|e| TestkitError::io("cannot create a temporary directory for ZooKeeper", e))?;
        let dir = tempdir.path().to_path_buf();
        let server = ZkServer {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
            dir,
            settings: settings.clone(),
            role,
            shared: false,
            process: Mutex::new(None),
            _tempdir: tempdir,
        };
        server.write_files()?;
        Ok(server)
    }

    fn write_files(&self) -> Result<(), TestkitError> {
        let s = &self.settings;
        let tick = s.tick_time.as_millis();
        let min = s.min_session_timeout.map_or(2 * tick, |d| d.as_millis());
        let max = s.max_session_timeout.map_or(20 * tick, |d| d.as_millis());
        let mut cfg = String::new();
        let _ = writeln!(cfg, "# Written by mazurka::testkit.");
        let _ = writeln!(cfg, "tickTime={tick}");
        let _ = writeln!(cfg, "dataDir={}", self.dir.display());
        let _ = writeln!(cfg, "clientPort={}", self.addr.port());
        let _ = writeln!(cfg, "clientPortAddress=127.0.0.1");
        let _ = writeln!(cfg, "minSessionTimeout={min}");
        let _ = writeln!(cfg, "maxSessionTimeout={max}");
        let _ = writeln!(cfg, "maxClientCnxns=0");
        let _ = writeln!(cfg, "admin.enableServer=false");
        let _ = writeln!(cfg, "4lw.commands.whitelist=*");
        let _ = writeln!(cfg, "forceSync=no");
        let _ = writeln!(cfg, "preAllocSize=1024");
        if let Role::Member { myid, peers } = &self.role {
            let _ = writeln!(cfg, "initLimit={}", s.init_limit);
            let _ = writeln!(cfg, "syncLimit={}", s.sync_limit);
            let _ = writeln!(cfg, "standaloneEnabled=false");
            let _ = writeln!(cfg, "reconfigEnabled=false");
            for (i, p) in peers.iter().enumerate() {
                let _ = writeln!(cfg, "server.{}=127.0.0.1:{}:{}", i + 1, p.quorum, p.election);
            }
            self.write("myid", &format!("{myid}\n"))?;
        }
        for (key, value) in &s.extra_config {
            let _ = writeln!(cfg, "{key}={value}");
        }
        self.write("zoo.cfg", &cfg)?;
        self.write(
            "log4j.properties",
            "log4j.rootLogger=INFO, CONSOLE\n\
             log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n",
        )?;
        self.write(
            "logback.xml",
            "<configuration>\n  <appender name=\"CONSOLE\" class=\"ch.qos.logback.core.ConsoleAppender\">\n    \
             <encoder><pattern>%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>\n  </appender>\n  \
             <root level=\"INFO\"><appender-ref ref=\"CONSOLE\"/></root>\n</configuration>\n",
        )
    }

    fn write(&self, name: &str, text: &str) -> Result<(), TestkitError> {
        let path = self.dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| TestkitError::io(format!("cannot write {}", path.display()), e))
    }

    fn java_args(&self) -> Vec<String> {
        let s = &self.settings;
        let dir = self.dir.display();
        let mut args = vec![
            format!("-Xmx{}m", s.heap_mb),
            format!("-Xms{}m", s.heap_mb.min(16)),
            "-Xss512k".to_owned(),
            "-XX:+UseSerialGC".to_owned(),
            "-XX:TieredStopAtLevel=1".to_owned(),
            // No /tmp/hsperfdata_* files left behind by a SIGKILLed JVM.
            "-XX:-UsePerfData".to_owned(),
            "-Djava.net.preferIPv4Stack=true".to_owned(),
            "-Dzookeeper.admin.enableServer=false".to_owned(),
            "-Dzookeeper.jmx.log4j.disable=true".to_owned(),
            // Reap empty container nodes (lock directories) within a second, not a minute, so
            // tests can see it happen.
            "-Dznode.container.checkIntervalMs=500".to_owned(),
            "-Dzookeeper.root.logger=INFO,CONSOLE".to_owned(),
            format!("-Dzookeeper.log.dir={dir}"),
            format!("-Dlog4j.configuration=file:{dir}/log4j.properties"),
            format!("-Dlogback.configurationFile={dir}/logback.xml"),
        ];
        args.extend(s.jvm_args.iter().cloned());
        args.push(
            match self.role {
                Role::Standalone => "org.apache.zookeeper.server.ZooKeeperServerMain",
                Role::Member { .. } => "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            }
            .to_owned(),
        );
        args.push(self.dir.join("zoo.cfg").display().to_string());
        args
    }

    fn lock(&self) -> MutexGuard<'_, Option<JavaProcess>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a JVM on this server's directory and ports (the previous one must have exited);
    /// does not wait for it to answer.
    pub(crate) fn launch(&self) -> Result<(), TestkitError> {
        let mut slot = self.lock();
        let new = JavaProcess::spawn(&self.dir, &self.log_file(), &self.java_args())?;
        // The new wrapper owns the directory from now on; the old one must leave it alone.
        if let Some(old) = slot.replace(new) {
            old.release(true);
        }
        Ok(())
    }

    /// Waits until the server answers `ruok` and reports the mode its role expects.
    pub(crate) fn wait_ready(&self, deadline: Instant) -> Result<ServerMode, TestkitError> {
        loop {
            if !self.lock().as_ref().is_some_and(JavaProcess::is_alive) {
                return Err(self.start_failed("the server process exited while starting".to_owned()));
            }
            if let Some(mode) = self.probe() {
                if self.role.accepts(&mode) {
                    return Ok(mode);
                }
            }
            if Instant::now() >= deadline {
                let reason = format!(
                    "no `ruok` → imok and `srvr` with {} within {:?}",
                    self.role.expected(),
                    self.settings.start_timeout
                );
                let err = self.start_failed(reason);
                if let Some(process) = self.lock().as_mut() {
                    process.kill();
                }
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ruok` and `srvr`, briefly: the mode if the server is serving.
    fn probe(&self) -> Option<ServerMode> {
        let ruok = four_letter_word_timeout(self.addr, "ruok", PROBE_TIMEOUT).ok()?;
        if ruok.trim() != "imok" {
            return None;
        }
        ServerMode::from_srvr(&four_letter_word_timeout(self.addr, "srvr", PROBE_TIMEOUT).ok()?)
    }

    pub(crate) fn start_failed(&self, reason: String) -> TestkitError {
        TestkitError::StartFailed {
            addr: self.addr,
            reason,
            log: self.log_file(),
            log_tail: self.log_tail(40),
        }
    }

    /// Whether the log says a port was taken (a retry with other ports may succeed).
    pub(crate) fn address_in_use(&self) -> bool {
        std::fs::read(self.log_file())
            .map(|log| String::from_utf8_lossy(&log).contains("Address already in use"))
            .unwrap_or(false)
    }

    fn refuse_if_shared(&self, action: &'static str) -> Result<(), TestkitError> {
        if self.shared {
            Err(TestkitError::SharedServer { action })
        } else {
            Ok(())
        }
    }

    /// The connect string, `"127.0.0.1:PORT"`. Append a chroot for a client that should work
    /// under one: `format!("{}{}", server.connect_string(), unique_chroot("t"))`.
    #[must_use]
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// The client port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The client address (on 127.0.0.1).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's directory: ZooKeeper's `dataDir` (`version-2/`, `myid`), plus `zoo.cfg`,
    /// the logging configuration and `server.log`. Removed when the server is dropped.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file (everything the JVM printed).
    #[must_use]
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The last `lines` lines of the server's log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_file(), lines)
    }

    /// `tickTime`.
    #[must_use]
    pub fn tick_time(&self) -> Duration {
        self.settings.tick_time
    }

    /// The shortest session timeout this server grants.
    #[must_use]
    pub fn min_session_timeout(&self) -> Duration {
        self.settings
            .min_session_timeout
            .unwrap_or(self.settings.tick_time * 2)
    }

    /// The longest session timeout this server grants.
    #[must_use]
    pub fn max_session_timeout(&self) -> Duration {
        self.settings
            .max_session_timeout
            .unwrap_or(self.settings.tick_time * 20)
    }

    /// The JVM's pid, while it runs (paused included).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.lock()
            .as_ref()
            .filter(|p| p.is_alive())
            .map(JavaProcess::pid)
    }

    /// Whether the server process is alive (a paused one is). It may not be serving yet, or
    /// any more (an ensemble member without a quorum): see [`mode`](Self::mode).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.lock().as_ref().is_some_and(JavaProcess::is_alive)
    }

    /// Whether the server process is paused ([`pause`](Self::pause)).
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.lock().as_ref().is_some_and(JavaProcess::is_paused)
    }

    /// Sends a four-letter word to this server (see [`four_letter_word`](super::four_letter_word)).
    ///
    /// # Errors
    /// As [`four_letter_word`](super::four_letter_word).
    pub fn four_letter_word(&self, word: &str) -> io::Result<String> {
        super::four_letter_word(self.addr, word)
    }

    /// What the server says it is (`srvr`), or `None` if it does not answer within 1 s or is
    /// not serving.
    #[must_use]
    pub fn mode(&self) -> Option<ServerMode> {
        ServerMode::from_srvr(&four_letter_word_timeout(self.addr, "srvr", PROBE_TIMEOUT).ok()?)
    }

    /// Kills the server with SIGKILL (a crash: no goodbye to clients or peers) and waits until
    /// the process is gone. It stays down until [`restart`](Self::restart). Does nothing if it
    /// is already down.
    ///
    /// # Errors
    /// [`TestkitError::SharedServer`] on the shared server; [`TestkitError::Io`] if the process
    /// did not go away within 10 s.
    pub fn kill(&self) -> Result<(), TestkitError> {
        self.refuse_if_shared("kill")?;
        let mut slot = self.lock();
        if let Some(process) = slot.as_mut() {
            if !process.kill() {
                return Err(TestkitError::io(
                    format!(
                        "ZooKeeper at {} (pid {}) survived SIGKILL",
                        self.addr,
                        process.pid()
                    ),
                    io::Error::from(io::ErrorKind::TimedOut),
                ));
            }
        }
        Ok(())
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and waits until the process is gone.
    /// It stays down until [`restart`](Self::restart). Does nothing if it is already down.
    ///
    /// # Errors
    /// As [`kill`](Self::kill).
    pub fn stop(&self) -> Result<(), TestkitError> {
        self.refuse_if_shared("stop")?;
        let mut slot = self.lock();
        if let Some(process) = slot.as_mut() {
            if !process.terminate(STOP_GRACE) {
                return Err(TestkitError::io(
                    format!("ZooKeeper at {} (pid {}) did not stop", self.addr, process.pid()),
                    io::Error::from(io::ErrorKind::TimedOut),
                ));
            }
        }
        Ok(())
    }

    /// Starts the server again on the same port and data dir (so with the same znodes and
    /// sessions), and waits until it answers. A running server is [stopped](Self::stop) first.
    ///
    /// # Errors
    /// [`TestkitError::SharedServer`]; [`TestkitError::StartFailed`] if it does not answer
    /// within the start timeout (for instance because something else took the port meanwhile).
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.refuse_if_shared("restart")?;
        self.stop()?;
        self.launch()?;
        self.wait_ready(Instant::now() + self.settings.start_timeout)
            .map(drop)
    }

    /// Freezes the server with SIGSTOP: connections stay open and the kernel still accepts new
    /// ones, but nothing is answered — as a long GC pause or a hung machine looks to clients
    /// and peers. Sessions expire meanwhile if the pause outlasts them.
    ///
    /// # Errors
    /// [`TestkitError::SharedServer`]; [`TestkitError::NotRunning`].
    pub fn pause(&self) -> Result<(), TestkitError> {
        self.refuse_if_shared("pause")?;
        self.send("pause", "STOP")
    }

    /// Resumes a paused server with SIGCONT. Does nothing if it is not paused.
    ///
    /// # Errors
    /// [`TestkitError::SharedServer`]; [`TestkitError::NotRunning`].
    pub fn resume(&self) -> Result<(), TestkitError> {
        self.refuse_if_shared("resume")?;
        self.send("resume", "CONT")
    }

    fn send(&self, action: &'static str, sig: &str) -> Result<(), TestkitError> {
        let mut slot = self.lock();
        let process = slot
            .as_mut()
            .filter(|p| p.is_alive())
            .ok_or(TestkitError::NotRunning {
                action,
                addr: self.addr,
            })?;
        process
            .signal(sig)
            .map_err(|e| TestkitError::io(format!("cannot {action} ZooKeeper at {}", self.addr), e))
    }

    // Session expiry on demand needs a client: see `expire_session` in `sessions.rs`.
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        // Kills the JVM (SIGKILL works on a stopped process too), closes the wrapper's stdin
        // and waits for it; the wrapper removes the directory, and so does the TempDir after.
        let process = self
            .process
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(process);
    }
}

/// A fresh chroot path, `"/PREFIX-PID-COUNTER-RANDOM"`, so that each test works in a subtree of
/// its own on a shared server (tests in other binaries share nothing with this one, but the
/// pid and random part keep the names apart anyway).
///
/// Slashes in `prefix` become `-`. The znode is not created: a client that uses the chroot must
/// create it first (ZooKeeper does not create chroots).
#[must_use]
pub fn unique_chroot(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let prefix = prefix.trim_matches('/').replace('/', "-");
    let prefix = if prefix.is_empty() {
        "test"
    } else {
        prefix.as_str()
    };
    format!(
        "/{prefix}-{}-{n}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::session::CreateMode;
    use crate::Session;

    use super::*;
    use crate::testkit::process::process_alive;
    use crate::testkit::{four_letter_word, four_letter_word_timeout};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Waits until the process is gone and the directory removed.
    fn assert_gone(pid: u32, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while (process_alive(pid) || dir.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!process_alive(pid), "pid {pid} still alive");
        assert!(!dir.exists(), "{} still exists", dir.display());
    }

    fn create(connect: &str, path: &str) {
        runtime().block_on(async {
            let session = Session::connect(connect).await.unwrap();
            session
                .create(path, b"kept", CreateMode::Persistent)
                .await
                .unwrap();
            session.close().await.unwrap();
        });
    }

    fn read(connect: &str, path: &str) -> Vec<u8> {
        runtime().block_on(async {
            let session = Session::connect(connect).await.unwrap();
            let data = session.get(path).await.unwrap().unwrap().0;
            session.close().await.unwrap();
            data
        })
    }

    #[test]
    fn srvr_mode_is_parsed() {
        let reply = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(ServerMode::from_srvr(reply), Some(ServerMode::Follower));
        assert_eq!(
            ServerMode::from_srvr("Mode: standalone\n"),
            Some(ServerMode::Standalone)
        );
        assert_eq!(
            ServerMode::from_srvr("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn unique_chroots_are_fresh_paths() {
        let a = unique_chroot("locks");
        let b = unique_chroot("locks");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("/locks-{}-", std::process::id())), "{a}");
        assert!(unique_chroot("/a/b/").starts_with("/a-b-"));
        assert!(unique_chroot("").starts_with("/test-"));
    }

    #[test]
    fn builder_rejects_bad_settings() {
        let err = ZkServer::builder().tick_time(Duration::ZERO).start().unwrap_err();
        assert!(matches!(err, TestkitError::Config(_)), "{err}");
        let err = ZkServer::builder().heap_mb(8).start().unwrap_err();
        assert!(matches!(err, TestkitError::Config(_)), "{err}");
        let err = ZkServer::builder().start_ensemble(0).unwrap_err();
        assert!(matches!(err, TestkitError::Config(_)), "{err}");
    }

    #[test]
    fn shared_is_one_server_and_refuses_faults() {
        let a = ZkServer::shared().unwrap();
        let b = ZkServer::shared().unwrap();
        assert!(std::ptr::eq(a, b));
        assert!(four_letter_word(a.addr(), "srvr")
            .unwrap()
            .contains("Mode: standalone"));
        assert!(matches!(
            a.kill(),
            Err(TestkitError::SharedServer { action: "kill" })
        ));
        assert!(matches!(a.pause(), Err(TestkitError::SharedServer { .. })));
        assert!(matches!(a.restart(), Err(TestkitError::SharedServer { .. })));
        assert!(a.is_running());
    }

    #[test]
    fn start_pause_resume_and_drop_while_paused() {
        let server = ZkServer::start().unwrap();
        assert_eq!(server.connect_string(), format!("127.0.0.1:{}", server.port()));
        assert_eq!(server.addr().ip(), std::net::IpAddr::from(Ipv4Addr::LOCALHOST));
        assert!(server
            .four_letter_word("srvr")
            .unwrap()
            .contains("Mode: standalone"));
        assert_eq!(server.mode(), Some(ServerMode::Standalone));
        assert_eq!(four_letter_word(server.addr(), "ruok").unwrap(), "imok");
        assert!(server.data_dir().join("zoo.cfg").is_file());
        assert!(server.log_file().is_file());
        assert_eq!(server.max_session_timeout(), Duration::from_secs(4));
        let pid = server.pid().unwrap();
        let dir = server.data_dir().to_path_buf();

        server.pause().unwrap();
        assert!(server.is_paused() && server.is_running());
        assert!(four_letter_word_timeout(server.addr(), "ruok", Duration::from_millis(300)).is_err());
        server.resume().unwrap();
        assert!(!server.is_paused());
        assert_eq!(four_letter_word(server.addr(), "ruok").unwrap(), "imok");

        server.pause().unwrap();
        drop(server);
        assert_gone(pid, &dir);
    }

    #[test]
    fn kill_stop_and_restart_keep_port_and_data() {
        let server = ZkServer::start().unwrap();
        let port = server.port();
        create(&server.connect_string(), "/kept");
        let first = server.pid().unwrap();

        server.kill().unwrap();
        assert!(!server.is_running());
        assert_eq!(server.pid(), None);
        assert!(!process_alive(first));
        assert!(four_letter_word(server.addr(), "ruok").is_err());
        assert!(matches!(server.pause(), Err(TestkitError::NotRunning { .. })));
        server.kill().unwrap(); // already down: nothing to do

        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert!(server.pid().is_some_and(|p| p != first));
        assert_eq!(read(&server.connect_string(), "/kept"), b"kept");

        server.stop().unwrap();
        assert!(!server.is_running());
        server.restart().unwrap();
        // restart() of a running server stops it first.
        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert_eq!(read(&server.connect_string(), "/kept"), b"kept");

        let (pid, dir) = (server.pid().unwrap(), server.data_dir().to_path_buf());
        drop(server);
        assert_gone(pid, &dir);
    }

    #[test]
    fn a_taken_port_fails_fast_with_the_log_tail() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let server = ZkServer::prepare(&ZkServer::builder(), Role::Standalone, port).unwrap();
        server.launch().unwrap();
        let started = Instant::now();
        let err = server.wait_ready(started + Duration::from_secs(30)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(server.address_in_use(), "{err}");
        let TestkitError::StartFailed { addr, log_tail, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(addr.port(), port);
        assert!(log_tail.contains("Address already in use"), "{err}");
        assert!(!server.is_running());
    }

    const OWNER_CHILD: &str = "MAZURKA_TESTKIT_OWNER_CHILD";

    /// Helper of `dies_with_its_owner`: does nothing unless run by it.
    #[test]
    fn owner_child() {
        if std::env::var_os(OWNER_CHILD).is_none() {
            return;
        }
        let server = ZkServer::start().unwrap();
        println!("SERVER {} {}", server.pid().unwrap(), server.data_dir().display());
        std::thread::sleep(Duration::from_secs(120));
    }

    const START_PROBE: &str = "MAZURKA_TESTKIT_START_PROBE";

    /// Helper of `missing_java_or_jars_name_the_fix`: does nothing unless run by it.
    #[test]
    fn start_probe() {
        if std::env::var_os(START_PROBE).is_none() {
            return;
        }
        match ZkServer::start() {
            Ok(_) => println!("\nPROBE started"),
            Err(e) => println!("\nPROBE {}", e.to_string().replace('\n', " ")),
        }
    }

    /// Runs `start_probe` in a child process with `env` (the environment is process-wide).
    fn probe_start(env: &[(&str, &str)]) -> String {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "testkit::server::tests::start_probe",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(START_PROBE, "1")
            .env_remove("JAVA_HOME")
            .env_remove("ZOOKEEPER_HOME")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| l.split_once("PROBE ").map(|(_, r)| r.to_owned()))
            .unwrap_or(stdout)
    }

    #[test]
    fn missing_java_or_jars_name_the_fix() {
        let no_java = probe_start(&[("PATH", "/nonexistent")]);
        assert!(
            no_java.contains("apt-get install default-jre-headless"),
            "{no_java}"
        );
        let no_jars = probe_start(&[("ZOOKEEPER_HOME", "/nonexistent")]);
        assert!(no_jars.contains("apt-get install zookeeper"), "{no_jars}");
        assert!(no_jars.contains("ZOOKEEPER_HOME=/nonexistent"), "{no_jars}");
    }

    #[test]
    fn dies_with_its_owner() {
        let mut owner = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "testkit::server::tests::owner_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(OWNER_CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = owner.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints "test … ... " on the same line, before our output.
                if let Some((_, rest)) = line.split_once("SERVER ") {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60));
        let Ok(line) = line else {
            let _ = owner.kill();
            let _ = owner.wait();
            panic!("the owner process did not report its server");
        };
        let (pid, dir) = line.split_once(' ').unwrap();
        let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(dir));
        assert!(process_alive(pid));
        assert!(dir.is_dir());
        // SIGKILL: no destructor runs in the owner.
        owner.kill().unwrap();
        owner.wait().unwrap();
        assert_gone(pid, &dir);
    }
}
