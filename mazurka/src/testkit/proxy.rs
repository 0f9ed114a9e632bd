//! An in-process TCP proxy for fault injection: cut or stall the connections between a client
//! and a server.

use std::future::pending;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// How long [`FaultProxy::cut`] waits for the connections to be reset (they take microseconds).
const CUT_WAIT: Duration = Duration::from_secs(5);
/// Bytes read ahead per direction and connection (held while stalled).
const BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Stall,
    /// Requests go through, replies are held: "the request applied, its reply was lost".
    StallReplies,
    Cut,
}

impl Mode {
    /// Whether bytes may flow client-to-upstream (`true`) or upstream-to-client (`false`).
    fn flows(self, upstream: bool) -> bool {
        match self {
            Mode::Forward => true,
            Mode::StallReplies => upstream,
            Mode::Stall | Mode::Cut => false,
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<SocketAddr>,
    /// Open proxied connections; `cut()` waits on `closed` until it is 0.
    live: Mutex<usize>,
    closed: Condvar,
    accepted: AtomicUsize,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, usize> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a connection as open from admission until its sockets are closed.
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = self.0.live();
        *live = live.saturating_sub(1);
        self.0.closed.notify_all();
    }
}

/// A TCP proxy on a loopback port in front of one upstream server, for fault injection:
/// point a client at [`connect_string`](Self::connect_string), then [`cut`](Self::cut),
/// [`stall`](Self::stall) and [`heal`](Self::heal) its connections.
///
/// The proxy runs on a tokio runtime of its own (one worker thread), so it works the same
/// from sync tests and from `#[tokio::test]` of either flavour, and keeps working while the
/// test's runtime is blocked. Dropping it shuts that runtime down in the background: open
/// connections are closed, without blocking.
///
/// # Guarantees
/// * [`stall`](Self::stall): when it returns, no further byte reaches either side of any
///   connection until [`heal`](Self::heal). Connections stay open, new ones are accepted and
///   connected upstream, but nothing is read from the sockets (a client's writes fill the
///   kernel buffers; at most 16 KiB per direction read before the stall is held back).
/// * [`cut`](Self::cut): when it returns, every connection that was open has been reset
///   (RST, both to the client and upstream: reads there fail with `ConnectionReset` or see
///   end-of-file), and connections arriving until [`heal`](Self::heal) are accepted and reset
///   at once.
/// * [`heal`](Self::heal): when it returns, new connections are forwarded again; stalled
///   connections resume at once, with the bytes they held delivered first.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding every connection to `upstream`.
    ///
    /// # Errors
    /// The listener cannot be bound or the proxy's runtime cannot be built.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mazurka-fault-proxy")
            .enable_io()
            .enable_time()
            .build()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            live: Mutex::new(0),
            closed: Condvar::new(),
            accepted: AtomicUsize::new(0),
        });
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        runtime.spawn(accept_loop(listener, ready_tx, mode_rx, Arc::clone(&shared)));
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                runtime.shutdown_background();
                return Err(e);
            }
            Err(_) => {
                runtime.shutdown_background();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the proxy runtime did not start",
                ));
            }
        }
        Ok(FaultProxy {
            addr,
            mode,
            shared,
            runtime: Some(runtime),
        })
    }

    /// The proxy's address (on 127.0.0.1).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connect string for clients, `"127.0.0.1:PORT"`.
    #[must_use]
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Where new connections go.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends new connections to `upstream` from now on (open ones stay where they are).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = upstream;
    }

    /// Resets every open connection and resets new ones until [`heal`](Self::heal).
    /// Returns once the open ones are reset (see the [guarantees](Self#guarantees)).
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        let deadline = Instant::now() + CUT_WAIT;
        let mut live = self.shared.live();
        while *live > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            live = match self.shared.closed.wait_timeout(live, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Holds all traffic, on open and new connections, until [`heal`](Self::heal)
    /// (see the [guarantees](Self#guarantees)).
    pub fn stall(&self) {
        // Copy loops write only while holding a read lock on the mode, so once this write
        // returns no write is in progress and none will start.
        self.mode.send_replace(Mode::Stall);
    }

    /// Lets requests through to the server but holds its replies, on open and new connections,
    /// until [`heal`](Self::heal) or [`cut`](Self::cut): with a `cut()` after it, a request is
    /// applied on the server while its reply is lost.
    pub fn stall_replies(&self) {
        self.mode.send_replace(Mode::StallReplies);
    }

    /// Back to normal forwarding (see the [guarantees](Self#guarantees)).
    pub fn heal(&self) {
        self.mode.send_replace(Mode::Forward);
    }

    /// Whether the proxy is cut.
    #[must_use]
    pub fn is_cut(&self) -> bool {
        *self.mode.borrow() == Mode::Cut
    }

    /// Whether the proxy is stalled.
    #[must_use]
    pub fn is_stalled(&self) -> bool {
        *self.mode.borrow() == Mode::Stall
    }

    /// Proxied connections open right now.
    #[must_use]
    pub fn connections(&self) -> usize {
        *self.shared.live()
    }

    /// Connections accepted so far, including those reset at once while cut.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn accept_loop(
    listener: std::net::TcpListener,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
    mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => {
            let _ = ready.send(Ok(()));
            listener
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, say: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        // Admission under the mode's read lock: cut() either sees this connection counted
        // (and waits for it) or this sees Cut.
        let admitted = {
            let current = mode.borrow();
            if *current == Mode::Cut {
                false
            } else {
                *shared.live() += 1;
                true
            }
        };
        if !admitted {
            reset(client);
            continue;
        }
        let guard = LiveGuard(Arc::clone(&shared));
        tokio::spawn(connection(client, mode.clone(), Arc::clone(&shared), guard));
    }
}

/// Resolves once the mode is `Cut`.
async fn until_cut(mode: &mut watch::Receiver<Mode>) {
    loop {
        if *mode.borrow_and_update() == Mode::Cut {
            return;
        }
        if mode.changed().await.is_err() {
            pending::<()>().await;
        }
    }
}

async fn connection(
    client: TcpStream,
    mut mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
    guard: LiveGuard,
) {
    let _ = client.set_nodelay(true);
    let upstream_addr = *shared.upstream.lock().unwrap_or_else(PoisonError::into_inner);
    let upstream = tokio::select! {
        upstream = TcpStream::connect(upstream_addr) => upstream,
        () = until_cut(&mut mode) => Err(io::Error::from(io::ErrorKind::ConnectionAborted)),
    };
    let Ok(upstream) = upstream else {
        reset(client);
        drop(guard);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let pair = Pair {
        client,
        upstream,
        _guard: guard,
    };
    if pump(&pair.client, &pair.upstream, &mut mode).await == End::Reset {
        let _ = pair.client.set_zero_linger();
        let _ = pair.upstream.set_zero_linger();
    }
    // Fields drop in order: both sockets close before the guard counts the connection closed.
    drop(pair);
}

struct Pair {
    client: TcpStream,
    upstream: TcpStream,
    _guard: LiveGuard,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
}

/// One direction of a connection: bytes read from one side, not yet written to the other.
struct Flow {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    shut: bool,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }
    fn wants_read(&self) -> bool {
        !self.eof && self.start == self.end
    }
    fn pending(&self) -> bool {
        self.start < self.end
    }
    fn done(&self) -> bool {
        self.shut
    }
}

enum Event {
    ModeChanged,
    ProxyGone,
    Read(bool),
    Write(bool),
    Failed,
}

impl Event {
    fn unless(self, ready: io::Result<()>) -> Event {
        if ready.is_ok() {
            self
        } else {
            Event::Failed
        }
    }
}

/// Copies both ways between `a` (the client) and `b` (upstream) under the mode's control.
///
/// Every socket operation (read, write, half-close) happens synchronously while holding a read
/// lock on the mode and only in `Forward` mode, so once `stall()` or `cut()` has replaced the
/// mode, none is in progress and none will start.
async fn pump(a: &TcpStream, b: &TcpStream, mode: &mut watch::Receiver<Mode>) -> End {
    let mut ab = Flow::new();
    let mut ba = Flow::new();
    loop {
        let current = *mode.borrow_and_update();
        if current == Mode::Cut {
            return End::Reset;
        }
        if ab.done() && ba.done() {
            return End::Closed;
        }
        let (up, down) = (current.flows(true), current.flows(false));
        // `true`: the client-to-upstream flow; `false`: upstream-to-client.
        let event = tokio::select! {
            changed = mode.changed() => match changed {
                Ok(()) => Event::ModeChanged,
                Err(_) => Event::ProxyGone,
            },
            ready = a.readable(), if up && ab.wants_read() => Event::Read(true).unless(ready),
            ready = b.readable(), if down && ba.wants_read() => Event::Read(false).unless(ready),
            ready = b.writable(), if up && ab.pending() => Event::Write(true).unless(ready),
            ready = a.writable(), if down && ba.pending() => Event::Write(false).unless(ready),
        };
        let (from, to, flow, read, upstream) = match event {
            Event::ModeChanged => continue,
            Event::ProxyGone => return End::Closed,
            Event::Failed => return End::Reset,
            Event::Read(true) => (a, b, &mut ab, true, true),
            Event::Read(false) => (b, a, &mut ba, true, false),
            Event::Write(true) => (a, b, &mut ab, false, true),
            Event::Write(false) => (b, a, &mut ba, false, false),
        };
        let outcome = {
            let current = mode.borrow();
            if !current.flows(upstream) {
                continue;
            }
            let outcome = if read {
                from.try_read(&mut flow.buf).map(|n| match n {
                    0 => flow.eof = true,
                    n => (flow.start, flow.end) = (0, n),
                })
            } else {
                to.try_write(&flow.buf[flow.start..flow.end])
                    .map(|n| flow.start += n)
            };
            if outcome.is_ok() && flow.eof && !flow.pending() && !flow.shut {
                // Pass the half-close on.
                let _ = shutdown_write(to);
                flow.shut = true;
            }
            outcome
        };
        match outcome {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return End::Reset,
        }
    }
}

/// `shutdown(SHUT_WR)` right now, through a duplicate of the descriptor (the socket is shared,
/// so this half-closes it; dropping the duplicate closes nothing else).
fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    let fd = stream.as_fd().try_clone_to_owned()?;
    std::net::TcpStream::from(fd).shutdown(std::net::Shutdown::Write)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};

    use super::*;
    use tokio::io::AsyncWriteExt;

    use crate::testkit::{four_letter_word_timeout, ZkServer};

    /// A server that answers every connection with `greeting`, then echoes what it reads.
    fn echo_server(greeting: &'static [u8]) -> SocketAddr {
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    if stream.write_all(greeting).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &FaultProxy) -> StdStream {
        let stream = StdStream::connect(proxy.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
    }

    fn read_exact(stream: &mut StdStream, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn round_trip(stream: &mut StdStream, bytes: &[u8]) -> Vec<u8> {
        stream.write_all(bytes).unwrap();
        read_exact(stream, bytes.len()).unwrap()
    }

    /// Waits (briefly) for a condition that the proxy's runtime makes true.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn is_reset_or_eof(stream: &mut StdStream) -> bool {
        match stream.read(&mut [0u8; 16]) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    #[test]
    fn forwards_both_ways_and_half_closes() {
        let proxy = FaultProxy::start(echo_server(b"hi")).unwrap();
        assert_eq!(
            proxy.connect_string(),
            format!("127.0.0.1:{}", proxy.addr().port())
        );
        let mut client = connect(&proxy);
        assert_eq!(read_exact(&mut client, 2).unwrap(), b"hi");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let writer = {
            let mut client = client.try_clone().unwrap();
            let big = big.clone();
            std::thread::spawn(move || client.write_all(&big).unwrap())
        };
        assert_eq!(read_exact(&mut client, big.len()).unwrap(), big);
        writer.join().unwrap();
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.accepted(), 1);
        // Our half-close reaches the echo server, whose close comes back as end-of-file.
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(client.read(&mut [0u8; 4]).unwrap(), 0);
        eventually("the connection to close", || proxy.connections() == 0);
    }

    #[test]
    fn cut_resets_and_refuses_until_heal() {
        let proxy = FaultProxy::start(echo_server(b"")).unwrap();
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        assert_eq!(round_trip(&mut a, b"one"), b"one");
        assert_eq!(round_trip(&mut b, b"two"), b"two");

        proxy.cut();
        assert!(proxy.is_cut());
        assert_eq!(proxy.connections(), 0);
        assert!(is_reset_or_eof(&mut a));
        assert!(is_reset_or_eof(&mut b));

        // New connections are accepted and reset at once.
        let mut c = connect(&proxy);
        assert!(is_reset_or_eof(&mut c));
        assert_eq!(proxy.accepted(), 3);

        proxy.heal();
        let mut d = connect(&proxy);
        assert_eq!(round_trip(&mut d, b"back"), b"back");
    }

    #[test]
    fn stall_holds_traffic_until_heal() {
        let proxy = FaultProxy::start(echo_server(b"")).unwrap();
        let mut open = connect(&proxy);
        assert_eq!(round_trip(&mut open, b"before"), b"before");

        proxy.stall();
        assert!(proxy.is_stalled());
        open.write_all(b"held").unwrap();
        let mut fresh = connect(&proxy);
        fresh.write_all(b"also").unwrap();
        for stream in [&mut open, &mut fresh] {
            stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let err = stream.read(&mut [0u8; 8]).unwrap_err();
            assert!(
                matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
                "{err}"
            );
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        assert_eq!(proxy.connections(), 2);

        proxy.heal();
        assert_eq!(read_exact(&mut open, 4).unwrap(), b"held");
        assert_eq!(read_exact(&mut fresh, 4).unwrap(), b"also");
    }

    #[test]
    fn stall_holds_a_zookeeper_four_letter_word() {
        let server = ZkServer::shared().unwrap();
        let proxy = FaultProxy::start(server.addr()).unwrap();
        let ruok = |timeout| four_letter_word_timeout(proxy.addr(), "ruok", timeout);
        assert_eq!(ruok(Duration::from_secs(2)).unwrap(), "imok");
        proxy.stall();
        assert!(ruok(Duration::from_millis(300)).is_err());
        proxy.heal();
        assert_eq!(ruok(Duration::from_secs(2)).unwrap(), "imok");
        proxy.cut();
        assert!(ruok(Duration::from_secs(2)).is_err_or_empty());
        proxy.heal();
        assert_eq!(ruok(Duration::from_secs(2)).unwrap(), "imok");
    }

    trait ErrOrEmpty {
        fn is_err_or_empty(&self) -> bool;
    }

    impl ErrOrEmpty for io::Result<String> {
        fn is_err_or_empty(&self) -> bool {
            self.as_ref().map_or(true, String::is_empty)
        }
    }

    #[test]
    fn set_upstream_redirects_new_connections() {
        let proxy = FaultProxy::start(echo_server(b"A")).unwrap();
        let mut first = connect(&proxy);
        assert_eq!(read_exact(&mut first, 1).unwrap(), b"A");
        let other = echo_server(b"B");
        proxy.set_upstream(other);
        assert_eq!(proxy.upstream(), other);
        let mut second = connect(&proxy);
        assert_eq!(read_exact(&mut second, 1).unwrap(), b"B");
        assert_eq!(round_trip(&mut first, b"still"), b"still");
    }

    #[test]
    fn drop_closes_connections() {
        let proxy = FaultProxy::start(echo_server(b"")).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(round_trip(&mut client, b"x"), b"x");
        drop(proxy);
        assert!(is_reset_or_eof(&mut client));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn works_inside_a_current_thread_runtime() {
        let proxy = FaultProxy::start(echo_server(b"")).unwrap();
        let mut client = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(b"async").await.unwrap();
        let mut buf = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"async");
        proxy.stall();
        proxy.cut();
        let mut rest = Vec::new();
        let outcome = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest).await;
        assert!(outcome.is_err() || rest.is_empty());
        drop(proxy); // in an async context: must not panic or block
    }
}
