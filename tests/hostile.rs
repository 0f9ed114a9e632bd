//! Hostile bytes, end to end: whoever can write a ref's znodes (its value, its `.blobs` chunk
//! sets) writes forged envelopes, pointers and set records with the bare ZooKeeper client, and a
//! victim process opens, reads, writes and reclaims through Mazurka. Every forgery must end in a
//! typed error, in bounded memory and time, and no object-store key outside the ref's own may be
//! read or deleted. (And a ref opened before anyone created it.)

#![allow(clippy::disallowed_types)] // the bare client writes forged bytes behind the library's back

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mazurka::blob::{BlobStore, ObjectStoreBlobs};
use mazurka::codec::{Envelope, WriterId};
use mazurka::{Atom, Bincode, BlobOptions, Codec, Error, Ref, Session};
use sha2::{Digest, Sha256};
use tokio::time::timeout;

/// Long enough for any honest answer on a loaded machine; far shorter than an endless loop.
const BOUND: Duration = Duration::from_secs(30);

/// A set id of the attacker's choosing.
const SET_ID: u128 = 0x00c0_ffee_0000_0000_0000_0000_0000_0001;

/// The object outside the ref's own keys that the attacker wants read or deleted.
const SECRET_KEY: &str = "secret/plans";

async fn raw(session: &Session) -> zookeeper_client::Client {
    let chroot = session.chroot().expect("chroot").to_string();
    zookeeper_client::Client::connector()
        .connect(&format!("{}{chroot}", common::server().connect_string()))
        .await
        .expect("bare client")
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A pointer in the documented format (module docs of `mazurka::blob`).
#[allow(clippy::too_many_arguments)]
fn pointer(
    external: bool,
    set_id: u128,
    len: u64,
    chunks: u32,
    chunk_size: u32,
    hash: [u8; 32],
    key: &str,
) -> Vec<u8> {
    let mut out = vec![1, u8::from(external)];
    out.extend_from_slice(&set_id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&chunks.to_le_bytes());
    out.extend_from_slice(&chunk_size.to_le_bytes());
    out.extend_from_slice(&hash);
    out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// A chunk set's record (module docs of `mazurka::blob`).
fn record(external: bool, retired: bool, key: &str) -> Vec<u8> {
    let mut out = b"MZKB".to_vec();
    out.extend_from_slice(&[1, u8::from(external), u8::from(retired)]);
    out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// An envelope of the bincode codec, chunked (`payload` is a pointer) or inline.
fn envelope(chunked: bool, payload: &[u8]) -> Vec<u8> {
    Envelope {
        codec_id: Bincode::ID,
        chunked,
        writer: WriterId(0xbad),
        history: vec![],
        payload,
    }
    .to_vec()
}

fn set_name(set_id: u128) -> String {
    format!("{set_id:032x}")
}

/// A filesystem object store holding the secret (a valid bincode `Vec<u8>`, so that a reader that
/// follows a pointer to it decodes it as a value).
async fn store_with_secret(dir: &Path) -> (Arc<ObjectStoreBlobs>, Vec<u8>) {
    let store = Arc::new(ObjectStoreBlobs::local(dir).unwrap());
    let secret = Bincode::encode(&b"the secret plans".to_vec()).unwrap();
    store.put(SECRET_KEY, secret.clone().into()).await.unwrap();
    (store, secret)
}

async fn secret_exists(store: &ObjectStoreBlobs) -> bool {
    store.get(SECRET_KEY).await.unwrap().is_some()
}

fn expect_blob_error<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, mentions: &str) {
    match result {
        Err(Error::Blob { reason, .. }) => assert!(
            reason.contains(mentions),
            "{what}: the reason should mention {mentions:?}: {reason}"
        ),
        other => panic!("{what}: expected Error::Blob, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pointer_naming_a_foreign_object_is_not_followed() {
    let session = common::session("hostile-read").await;
    let dir = tempfile::tempdir().unwrap();
    let (store, secret) = store_with_secret(dir.path()).await;
    let forged = pointer(
        true,
        SET_ID,
        secret.len() as u64,
        0,
        u32::try_from(secret.len()).unwrap(),
        sha(&secret),
        SECRET_KEY,
    );
    let zk = raw(&session).await;
    zk.create("/victim", &envelope(true, &forged), &persistent())
        .await
        .unwrap();

    let options = BlobOptions::default().store(store);
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open_with(&session, "/victim", options))
        .await
        .expect("bounded time");
    expect_blob_error("a pointer to a key outside the ref's own", opened, "key");
}

#[tokio::test]
async fn reclaim_never_deletes_an_object_a_forged_set_record_names() {
    let session = common::session("hostile-reclaim").await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_secret(dir.path()).await;
    let options = BlobOptions::default()
        .store(store.clone())
        .grace(Duration::ZERO)
        .orphan_age(Duration::ZERO);
    let victim: Ref<Vec<u8>> = Ref::new_with(&session, "/victim", vec![1], options)
        .await
        .unwrap();

    // A retired set and an orphan, both naming the secret.
    let zk = raw(&session).await;
    zk.create("/victim.blobs", &[], &persistent()).await.unwrap();
    let retired = format!("/victim.blobs/{}", set_name(SET_ID));
    zk.create(&retired, &record(true, false, SECRET_KEY), &persistent())
        .await
        .unwrap();
    zk.set_data(&retired, &record(true, true, SECRET_KEY), Some(0))
        .await
        .unwrap();
    let orphan = format!("/victim.blobs/{}", set_name(SET_ID + 1));
    zk.create(&orphan, &record(true, false, SECRET_KEY), &persistent())
        .await
        .unwrap();

    let report = timeout(BOUND, victim.reclaim())
        .await
        .expect("bounded time")
        .unwrap();
    assert!(
        secret_exists(&store).await,
        "reclaim deleted an object outside the ref's keys ({report:?})"
    );
    // The forged set znodes themselves are the ref's own: they go.
    assert_eq!(report.deleted, 2, "{report:?}");
    assert!(zk.check_stat(&retired).await.unwrap().is_none());
    assert!(zk.check_stat(&orphan).await.unwrap().is_none());
}

#[tokio::test]
async fn writing_over_a_forged_pointer_does_not_retire_a_foreign_key() {
    let session = common::session("hostile-retire").await;
    let dir = tempfile::tempdir().unwrap();
    let (store, secret) = store_with_secret(dir.path()).await;
    let options = BlobOptions::default()
        .store(store.clone())
        .grace(Duration::ZERO)
        .orphan_age(Duration::ZERO);
    let victim: Atom<Vec<u8>> = Atom::new_with(&session, "/victim", vec![1], options)
        .await
        .unwrap();

    // The value becomes a pointer to the secret; its set znode is live and names no key at all,
    // so only a retirement that copies the pointer's key could name the secret.
    let zk = raw(&session).await;
    zk.create("/victim.blobs", &[], &persistent()).await.unwrap();
    let set = format!("/victim.blobs/{}", set_name(SET_ID));
    zk.create(&set, &record(true, false, ""), &persistent())
        .await
        .unwrap();
    let forged = pointer(
        true,
        SET_ID,
        secret.len() as u64,
        0,
        u32::try_from(secret.len()).unwrap(),
        sha(&secret),
        SECRET_KEY,
    );
    zk.set_data("/victim", &envelope(true, &forged), None)
        .await
        .unwrap();

    // The victim writes over it (whatever it makes of the forged value), then reclaims.
    let written = timeout(BOUND, victim.reset(vec![2])).await.expect("bounded time");
    let reclaimed = timeout(BOUND, victim.reclaim()).await.expect("bounded time");
    assert!(
        secret_exists(&store).await,
        "the write's retirement or reclaim deleted an object outside the ref's keys (write: {written:?}, \
         reclaim: {reclaimed:?})"
    );
}

/// Creates a complete, honest-looking ZooKeeper chunk set for `payload` in chunks of
/// `chunk_size`, and points `/victim` at it with `hash`.
async fn forge_zk_set(zk: &zookeeper_client::Client, payload: &[u8], chunk_size: usize, hash: [u8; 32]) {
    zk.create("/victim.blobs", &[], &persistent()).await.unwrap();
    let set = format!("/victim.blobs/{}", set_name(SET_ID));
    zk.create(&set, &record(false, false, ""), &persistent())
        .await
        .unwrap();
    let chunks: Vec<&[u8]> = payload.chunks(chunk_size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        zk.create(&format!("{set}/{i}"), chunk, &persistent())
            .await
            .unwrap();
    }
    let forged = pointer(
        false,
        SET_ID,
        payload.len() as u64,
        u32::try_from(chunks.len()).unwrap(),
        u32::try_from(chunk_size).unwrap(),
        hash,
        "",
    );
    zk.create("/victim", &envelope(true, &forged), &persistent())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pointer_above_the_readers_maximum_is_refused_before_fetching() {
    let session = common::session("hostile-huge").await;
    let zk = raw(&session).await;
    // A complete and correct set of 300 KB: only its size is hostile to this reader.
    let payload = Bincode::encode(&vec![7u8; 300_000]).unwrap();
    forge_zk_set(&zk, &payload, 100_000, sha(&payload)).await;
    let options = BlobOptions::default().max_value_bytes(100_000);
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open_with(&session, "/victim", options))
        .await
        .expect("bounded time");
    expect_blob_error("a pointer above max_value_bytes", opened, "max_value_bytes");

    // A length no reader could hold is refused by the default options too.
    let huge = pointer(false, SET_ID, 1 << 62, 1 << 31, 1 << 31, [0; 32], "");
    zk.set_data("/victim", &envelope(true, &huge), None)
        .await
        .unwrap();
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open(&session, "/victim"))
        .await
        .expect("bounded time");
    expect_blob_error("a pointer of 2^62 bytes", opened, "max_value_bytes");
}

#[tokio::test]
async fn a_pointer_with_tiny_chunks_is_refused() {
    let session = common::session("hostile-tiny").await;
    let zk = raw(&session).await;
    // 3,000 chunks of one byte each: a request per byte. No writer makes chunks under 1 KiB.
    let payload = Bincode::encode(&vec![7u8; 2_997]).unwrap();
    forge_zk_set(&zk, &payload, 1, sha(&payload)).await;
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open(&session, "/victim"))
        .await
        .expect("bounded time");
    expect_blob_error("a pointer with 1-byte chunks", opened, "chunk size");
}

#[tokio::test]
async fn a_pointer_with_a_wrong_hash_is_refused() {
    let session = common::session("hostile-hash").await;
    let zk = raw(&session).await;
    let payload = Bincode::encode(&vec![7u8; 5_000]).unwrap();
    forge_zk_set(&zk, &payload, 2_048, sha(b"something else")).await;
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open(&session, "/victim"))
        .await
        .expect("bounded time");
    expect_blob_error("a pointer with a wrong hash", opened, "SHA-256");
}

#[tokio::test]
async fn foreign_bytes_and_endless_sequences_are_codec_errors_in_bounded_time() {
    let session = common::session("hostile-codec").await;
    let zk = raw(&session).await;

    // Not an envelope at all.
    zk.create("/foreign", b"{\"hello\": 1}", &persistent())
        .await
        .unwrap();
    let opened = timeout(BOUND, Ref::<Vec<u8>>::open(&session, "/foreign"))
        .await
        .expect("bounded time");
    assert!(matches!(opened, Err(Error::Codec { .. })), "{opened:?}");

    // A sequence of 2^63 zero-sized elements: no bytes per element, so no byte limit stops it.
    let mut endless = vec![253];
    endless.extend_from_slice(&(1u64 << 63).to_le_bytes());
    zk.create("/units", &envelope(false, &endless), &persistent())
        .await
        .unwrap();
    // Decoding does not yield: a spinning decoder would hold any runtime it runs on, so the
    // victim gets a thread and a session of its own, and this test only waits for its answer.
    let connect = format!(
        "{}{}",
        common::server().connect_string(),
        session.chroot().unwrap()
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opened = runtime.block_on(async {
            let victim = Session::connect(connect).await.unwrap();
            Ref::<Vec<()>>::open(&victim, "/units").await.map(|_| ())
        });
        let _ = tx.send(opened);
    });
    let opened = timeout(BOUND, rx)
        .await
        .expect("a 2^63-element sequence must be refused in bounded time")
        .unwrap();
    assert!(matches!(opened, Err(Error::Codec { .. })), "{opened:?}");

    // An honest sequence of zero-sized elements still reads.
    let honest: Ref<Vec<()>> = Ref::new(&session, "/honest", vec![(); 100_000]).await.unwrap();
    assert_eq!(honest.deref_sync().await.unwrap().len(), 100_000);
}

#[tokio::test]
async fn a_ref_can_be_opened_before_it_is_created() {
    let sessions = common::sessions("open-when-created", 2).await;
    // `open` refuses a ref nobody created yet…
    let early = Ref::<u64>::open(&sessions[0], "/later").await;
    assert!(
        matches!(
            early,
            Err(Error::ZooKeeper {
                code: mazurka::ZkErrorCode::NoNode,
                ..
            })
        ),
        "{early:?}"
    );
    // …`open_when_created` waits for it.
    let waiter = {
        let session = sessions[0].clone();
        tokio::spawn(async move { Ref::<u64>::open_when_created(&session, "/later").await })
    };
    // Still waiting (it would have failed at once, as `open` did, without the wait).
    let mut waiter = std::pin::pin!(waiter);
    assert!(timeout(Duration::from_millis(300), &mut waiter).await.is_err());
    let creator: Ref<u64> = Ref::new(&sessions[1], "/later", 42).await.unwrap();
    let opened = timeout(BOUND, waiter)
        .await
        .expect("woken by the creation")
        .unwrap()
        .unwrap();
    assert_eq!(opened.deref().unwrap(), 42);
    drop(creator);
}
