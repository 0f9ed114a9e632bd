//! Large values against real servers: chunk sets behind pointers for refs, atoms and pods; sizes
//! around the inline limit; a writer SIGKILLed between its chunks and its commit; the maximum
//! size; two large refs in one transaction; an external (filesystem) store; reclaim.
//!
//! These tests use a server of their own with a 1 GiB heap (ZooKeeper keeps every znode in
//! memory; the shared 64 MiB test server is too small for 20 MB values).

mod common;

use std::collections::BTreeSet;
use std::fmt;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mazurka::blob::{ObjectStoreBlobs, ReclaimReport};
use mazurka::testkit::{unique_chroot, ZkServer};
use mazurka::{dosync, Atom, BlobOptions, Error, Pod, Ref, Session};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;

/// The sizes the issue asks for.
const SIZES: [usize; 6] = [0, MIB - 1, MIB, MIB + 1, 5_000_000, 20_000_000];

fn server() -> &'static ZkServer {
    static SERVER: OnceLock<ZkServer> = OnceLock::new();
    SERVER.get_or_init(|| match ZkServer::builder().heap_mb(1024).start() {
        Ok(server) => server,
        Err(err) => panic!("cannot start a ZooKeeper server for the blob tests: {err}"),
    })
}

async fn connect(connect: &str) -> Session {
    Session::builder(connect)
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .expect("connect")
}

/// `n` sessions in one fresh chroot, and the connect string of that chroot.
async fn sessions(prefix: &str, n: usize) -> (Vec<Session>, String) {
    let connect_string = format!("{}{}", server().connect_string(), unique_chroot(prefix));
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(connect(&connect_string).await);
    }
    (all, connect_string)
}

/// Test options: short grace so retired sets go quickly.
fn options() -> BlobOptions {
    BlobOptions::default().grace(Duration::from_millis(300))
}

/// Bytes serialized as one byte string (bincode: a length, then the bytes), as `serde_bytes`
/// would: fast to encode and decode even in debug builds.
#[derive(Clone, PartialEq, Eq, Default)]
struct Blob(Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Blob({} bytes, sha256 {})",
            self.0.len(),
            &hex(&sha(&self.0))[..16]
        )
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` pseudo-random bytes from `seed`; the first 8 bytes are the seed itself, so a value
/// says which write it came from and [`check`] can tell a complete value from anything else.
fn generate(seed: u64, len: usize) -> Blob {
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(&seed.to_le_bytes());
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Blob(out)
}

/// The seed of a complete generated value; panics on anything else (a torn or mixed value).
fn check(value: &Blob) -> u64 {
    let seed = u64::from_le_bytes(value.0[..8].try_into().expect("at least 8 bytes"));
    assert!(
        *value == generate(seed, value.0.len()),
        "a reader saw a value that no writer wrote (seed {seed:#x}, {} bytes): torn or mixed",
        value.0.len()
    );
    seed
}

/// The chunk sets under `<path>.blobs`.
async fn sets(session: &Session, path: &str) -> Vec<String> {
    session
        .list_children(&format!("{path}.blobs"))
        .await
        .expect("list chunk sets")
}

/// Waits until a background reclaim pass has left only `expected` chunk sets (time-based: polled).
async fn sets_settle(session: &Session, path: &str, expected: usize) {
    common::eventually(
        30,
        &format!("{path}.blobs holds {expected} chunk set(s)"),
        || async { sets(session, path).await.len() == expected },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_every_size_for_refs_atoms_and_pods() {
    let (s, _) = sessions("blob-sizes", 2).await;
    for (kind, path) in [
        ("ref", "/sizes/ref"),
        ("atom", "/sizes/atom"),
        ("pod", "/sizes/pod"),
    ] {
        for (i, &size) in SIZES.iter().enumerate() {
            let value = generate(0x5eed_0000 + i as u64, size);
            let digest = sha(&value.0);
            let written: Blob = match kind {
                "ref" => {
                    let r: Ref<Blob> = Ref::new_with(&s[0], path, Blob::default(), options())
                        .await
                        .unwrap();
                    let (rr, v) = (&r, &value);
                    dosync(|| async move { rr.ref_set(v.clone()).await.map(|_| ()) })
                        .await
                        .unwrap();
                    r.deref().unwrap()
                }
                "atom" => {
                    let a: Atom<Blob> = Atom::new_with(&s[0], path, Blob::default(), options())
                        .await
                        .unwrap();
                    a.reset(value.clone()).await.unwrap();
                    a.deref().unwrap()
                }
                _ => {
                    let p: Pod<Blob> = Pod::new_with(&s[0], path, Blob::default(), options())
                        .await
                        .unwrap();
                    let v = value.clone();
                    p.edit(move |slot, _| *slot = v).await.unwrap();
                    p.deref_sync().await.unwrap()
                }
            };
            assert_eq!(sha(&written.0), digest, "{kind} {size}: the writer's own replica");
            // Another session: a fresh read, then a transaction read (from its replica).
            let other: Ref<Blob> = Ref::open_with(&s[1], path, options()).await.unwrap();
            let fresh = other.deref_sync().await.unwrap();
            assert_eq!(
                (fresh.0.len(), sha(&fresh.0)),
                (size, digest),
                "{kind} {size}: deref_sync"
            );
            let o = &other;
            let in_txn = dosync(|| async move { o.get().await }).await.unwrap();
            assert_eq!(sha(&in_txn.0), digest, "{kind} {size}: read in a transaction");
            let chunked = !sets(&s[0], path).await.is_empty();
            if size == 0 {
                assert!(!chunked, "{kind}: an empty value is inline");
            } else {
                assert!(
                    chunked,
                    "{kind} {size}: above the 900 KiB inline limit, a chunk set"
                );
            }
        }
        // Five values went through chunk sets; retired ones are reclaimed in the background.
        sets_settle(&s[0], path, 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_over_sizes_across_the_inline_boundary() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let (s, _) = sessions("blob-prop", 2).await;
    let writer: Ref<Blob> = Ref::new_with(&s[0], "/prop", Blob::default(), options())
        .await
        .unwrap();
    let reader: Atom<Blob> = Atom::open_with(&s[1], "/prop", options()).await.unwrap();
    let inline_limit = BlobOptions::default().inline_limit;
    let sizes = prop_oneof![
        0..4096usize,
        (inline_limit - 64)..(inline_limit + 64),
        900_000..2_100_000usize,
    ];
    let mut runner = TestRunner::new(Config {
        cases: 8,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let seed = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&(sizes, any::<u64>()), |(size, salt)| {
        let n = seed.fetch_add(1, Ordering::Relaxed);
        let value = generate(n ^ (salt << 8), size);
        let (w, r) = (&writer, &reader);
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let v = &value;
                dosync(|| async move { w.ref_set(v.clone()).await.map(|_| ()) })
                    .await
                    .unwrap();
                let back = r.deref_sync().await.unwrap();
                prop_assert_eq!(back.0.len(), size);
                prop_assert_eq!(sha(&back.0), sha(&value.0));
                Ok(())
            })
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

const CHILD_CONNECT: &str = "MAZURKA_BLOB_TEST_CHILD_CONNECT";
const CHILD_SEED: u64 = 0xc41d;
const KILLED_SIZE: usize = 3_500_000;

/// Not a test on its own: the writer process of
/// `a_writer_killed_between_chunks_and_commit_leaves_readers_whole_values`, which runs this test
/// binary again with only this test and `MAZURKA_BLOB_TEST_CHILD_CONNECT` set. Without that
/// variable it does nothing.
#[tokio::test]
async fn child_writer() {
    let Ok(connect_string) = std::env::var(CHILD_CONNECT) else {
        return;
    };
    let session = connect(&connect_string).await;
    let r: Ref<Blob> = Ref::open(&session, "/killed").await.unwrap();
    let (rr, value) = (&r, &generate(CHILD_SEED, KILLED_SIZE));
    // MAZURKA_TEST_BLOB_STALL_AFTER makes this stop after k chunks, forever.
    dosync(|| async move { rr.ref_set(value.clone()).await.map(|_| ()) })
        .await
        .unwrap();
    panic!("the stall hook should have stopped the writer before its commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_between_chunks_and_commit_leaves_readers_whole_values() {
    const K: usize = 2; // of 4 chunks (3.5 MB in chunks of 1,000,000 bytes)
    let (s, connect_string) = sessions("blob-kill", 3).await;
    let writer: Ref<Blob> = Ref::new_with(&s[0], "/killed", generate(1, KILLED_SIZE), options())
        .await
        .unwrap();

    // Readers in another session: fresh reads and transaction reads, every value checked whole.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads_tx, mut reads) = tokio::sync::watch::channel(0usize);
    let reader = {
        let r: Ref<Blob> = Ref::open_with(&s[1], "/killed", options()).await.unwrap();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                seen.insert(check(&r.deref_sync().await.unwrap()));
                let rr = &r;
                seen.insert(check(&dosync(|| async move { rr.get().await }).await.unwrap()));
                seen.insert(check(&r.deref().unwrap()));
                n += 1;
                reads_tx.send_replace(n);
            }
            seen
        })
    };

    // The writer process: stops after K chunks (test hook), then is SIGKILLed.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_CONNECT, &connect_string)
        .env("MAZURKA_TEST_BLOB_STALL_AFTER", K.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (marker_tx, marker_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut marker_tx = Some(marker_tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(set) = line.strip_prefix("MAZURKA_TEST_BLOB_STALLED ") {
                if let Some(tx) = marker_tx.take() {
                    let _ = tx.send(set.to_owned());
                }
            }
        }
    });
    let orphan = timeout(BOUND, marker_rx).await.unwrap().unwrap();
    assert_eq!(
        s[2].list_children(&orphan).await.unwrap(),
        (0..K).map(|i| i.to_string()).collect::<Vec<_>>(),
        "the writer stopped after {K} chunks"
    );

    // While it hangs there, another write completes; then the writer dies without committing.
    let (w, v) = (&writer, &generate(2, KILLED_SIZE));
    dosync(|| async move { w.ref_set(v.clone()).await.map(|_| ()) })
        .await
        .unwrap();
    let before_kill = *reads.borrow();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Readers keep reading after the kill.
    timeout(BOUND, reads.wait_for(|n| *n >= before_kill + 5))
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let seen = timeout(BOUND, reader).await.unwrap().unwrap();
    assert!(
        !seen.contains(&CHILD_SEED),
        "the killed writer's value was never visible"
    );
    assert!(
        seen.is_subset(&BTreeSet::from([1, 2])),
        "only whole old or new values: {seen:?}"
    );
    assert_eq!(check(&writer.deref_sync().await.unwrap()), 2);

    // The orphan: left alone while it might still be committed (younger than orphan_age)…
    let patient = writer.reclaim().await.unwrap();
    assert!(patient.pending >= 1, "{patient:?}");
    assert!(s[2].exists(&orphan).await.unwrap());
    // …and deleted by a pass that treats it as abandoned.
    let sweeper: Ref<Blob> = Ref::open_with(&s[2], "/killed", options().orphan_age(Duration::ZERO))
        .await
        .unwrap();
    let report: ReclaimReport = sweeper.reclaim().await.unwrap();
    assert!(report.deleted >= 1 && report.current_chunked, "{report:?}");
    assert!(
        !s[2].exists(&orphan).await.unwrap(),
        "the orphan chunk set is gone"
    );
    // Only the current value's set remains once the retired one's grace is over.
    sets_settle(&s[2], "/killed", 1).await;
    assert_eq!(check(&sweeper.deref_sync().await.unwrap()), 2);
}

#[tokio::test]
async fn a_value_above_the_maximum_is_refused_and_nothing_is_written() {
    let (s, _) = sessions("blob-max", 1).await;
    let small = options().max_value_bytes(2 * MIB);
    let too_big = generate(7, 3 * MIB);

    // At creation: nothing at all, not even the parent.
    let created = Ref::<Blob>::new_with(&s[0], "/max/new/value", too_big.clone(), small.clone()).await;
    match created {
        Err(Error::ValueAboveMaximum {
            value_bytes,
            max_bytes,
            ..
        }) => assert!(value_bytes > 3 * MIB && max_bytes == 2 * MIB),
        other => panic!("expected ValueAboveMaximum, got {other:?}"),
    }
    assert!(!s[0].exists("/max").await.unwrap(), "no node left behind");

    // Writes through each kind: refused, value unchanged, no chunk set.
    let r: Ref<Blob> = Ref::new_with(&s[0], "/max/ref", generate(1, MIB + 1), small.clone())
        .await
        .unwrap();
    let a: Atom<Blob> = Atom::new_with(&s[0], "/max/atom", generate(1, 10), small.clone())
        .await
        .unwrap();
    let p: Pod<Blob> = Pod::new_with(&s[0], "/max/pod", generate(1, 10), small.clone())
        .await
        .unwrap();
    let (rr, v) = (&r, &too_big);
    let refused = dosync(|| async move { rr.ref_set(v.clone()).await.map(|_| ()) }).await;
    let message = match refused {
        Err(err @ Error::ValueAboveMaximum { .. }) => err.to_string(),
        other => panic!("expected ValueAboveMaximum, got {other:?}"),
    };
    assert!(
        message.contains("max_value_bytes") && message.contains("nothing was written"),
        "{message}"
    );
    assert!(matches!(
        a.reset(too_big.clone()).await,
        Err(Error::ValueAboveMaximum { .. })
    ));
    let v = too_big.clone();
    assert!(matches!(
        p.edit(move |slot, _| *slot = v).await,
        Err(Error::ValueAboveMaximum { .. })
    ));
    assert_eq!(check(&r.deref_sync().await.unwrap()), 1);
    assert_eq!(r.deref_sync().await.unwrap().0.len(), MIB + 1);
    assert_eq!(check(&a.deref_sync().await.unwrap()), 1);
    assert_eq!(check(&p.deref_sync().await.unwrap()), 1);
    assert_eq!(
        sets(&s[0], "/max/ref").await.len(),
        1,
        "only the initial value's chunk set"
    );
    assert!(sets(&s[0], "/max/atom").await.is_empty());
    assert!(sets(&s[0], "/max/pod").await.is_empty());
    let mut left = s[0].list_children("/max").await.unwrap();
    // The pod's lock directory is a container node: the server reaps it whenever it is empty.
    left.retain(|name| name != "pod.lock");
    assert_eq!(
        left,
        ["atom", "pod", "ref", "ref.blobs"],
        "nothing else under /max"
    );

    // `.blobs` is reserved.
    let reserved = Ref::<u8>::new(&s[0], "/max/x.blobs", 0).await;
    assert!(matches!(reserved, Err(Error::Config(_))), "{reserved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_large_refs_in_one_transaction_commit_atomically() {
    const SIZE: usize = 1_500_000;
    const WRITES: u64 = 12;
    let (s, _) = sessions("blob-pair", 2).await;
    let a: Ref<Blob> = Ref::new_with(&s[0], "/pair/a", generate(0, SIZE), options())
        .await
        .unwrap();
    let b: Ref<Blob> = Ref::new_with(&s[0], "/pair/b", generate(0, SIZE + 7), options())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let ra: Ref<Blob> = Ref::open_with(&s[1], "/pair/a", options()).await.unwrap();
        let rb: Ref<Blob> = Ref::open_with(&s[1], "/pair/b", options()).await.unwrap();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut pairs = 0u64;
            let mut seeds = BTreeSet::new();
            // Until the writer is done and the final pair has been seen: a read-only
            // transaction may serve an older snapshot (its replica lags under load), but not
            // forever, and never a mixed one.
            while !(stop.load(Ordering::SeqCst) && seeds.contains(&WRITES)) {
                let (x, y) = (&ra, &rb);
                let (va, vb) = dosync(|| async move { Ok::<_, Error>((x.get().await?, y.get().await?)) })
                    .await
                    .unwrap();
                let (sa, sb) = (check(&va), check(&vb));
                assert_eq!(sa, sb, "a transaction saw one new and one old large value");
                seeds.insert(sa);
                pairs += 1;
            }
            (pairs, seeds)
        })
    };
    for seed in 1..=WRITES {
        let (x, y) = (&a, &b);
        dosync(|| async move {
            x.ref_set(generate(seed, SIZE)).await?;
            y.ref_set(generate(seed, SIZE + 7)).await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (pairs, seeds) = timeout(BOUND, reader).await.unwrap().unwrap();
    assert!(
        pairs > 0 && seeds.len() > 1,
        "the reader saw {pairs} pairs, seeds {seeds:?}"
    );
    assert_eq!(check(&a.deref_sync().await.unwrap()), WRITES);
    assert_eq!(check(&b.deref_sync().await.unwrap()), WRITES);
    sets_settle(&s[0], "/pair/a", 1).await;
    sets_settle(&s[0], "/pair/b", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_filesystem_store_holds_the_bytes_and_zookeeper_the_pointer() {
    let (s, _) = sessions("blob-fs", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStoreBlobs::local(dir.path()).unwrap());
    let with_store = options().store(store);
    let a: Atom<Blob> = Atom::new_with(&s[0], "/fs/atom", generate(1, 5_000_000), with_store.clone())
        .await
        .unwrap();
    let other: Atom<Blob> = Atom::open_with(&s[1], "/fs/atom", with_store.clone())
        .await
        .unwrap();
    assert_eq!(check(&other.deref_sync().await.unwrap()), 1);
    let files = |root: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![root.to_owned()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    };
    let first = files(dir.path());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().len(),
        5_000_000 + 5,
        "the payload: length + bytes"
    );
    let chunk_sets = sets(&s[0], "/fs/atom").await;
    assert_eq!(chunk_sets.len(), 1);
    assert!(
        s[0].list_children(&format!("/fs/atom.blobs/{}", chunk_sets[0]))
            .await
            .unwrap()
            .is_empty(),
        "no chunk znodes: the bytes are in the store"
    );

    a.swap(|old| generate(check(old) + 1, 6_000_000)).await.unwrap();
    assert_eq!(check(&other.deref_sync().await.unwrap()), 2);
    // The superseded object goes once its grace is over.
    common::eventually(30, "the superseded object is deleted", || async {
        files(dir.path()) != first && files(dir.path()).len() == 1
    })
    .await;

    // A handle without the store cannot follow the pointer, and says why.
    let bare = Atom::<Blob>::open(&s[1], "/fs/atom").await;
    match bare {
        Err(Error::Blob { reason, .. }) => assert!(reason.contains("BlobOptions::store"), "{reason}"),
        other => panic!("expected Error::Blob, got {other:?}"),
    }
}

#[tokio::test]
async fn a_chunked_value_replicates_through_watches() {
    let (s, _) = sessions("blob-watch", 2).await;
    let a: Atom<Blob> = Atom::new_with(&s[0], "/w", generate(1, 2_000_000), options())
        .await
        .unwrap();
    let watched: Atom<Blob> = Atom::open_with(&s[1], "/w", options()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    watched.add_watch("seeds", move |old: &Blob, new: &Blob| {
        let _ = tx.send((check(old), check(new)));
    });
    a.reset(generate(2, 3_000_000)).await.unwrap();
    assert_eq!(timeout(BOUND, rx.recv()).await.unwrap().unwrap(), (1, 2));
    // The replica held the fetched payload before the watch fired: deref needs no request.
    assert_eq!(check(&watched.deref().unwrap()), 2);
    // Back to an inline value: the last chunk set is retired, then reclaimed.
    a.reset(generate(3, 100)).await.unwrap();
    assert_eq!(timeout(BOUND, rx.recv()).await.unwrap().unwrap(), (2, 3));
    sets_settle(&s[0], "/w", 0).await;
}
