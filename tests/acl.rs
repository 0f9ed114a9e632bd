//! ACL policies against a real server: every kind of znode the library creates carries the
//! policy's ACL (read back from the server, also after a session expiry), other credentials are
//! kept out, and nodes someone else created with a weaker ACL are refused, never built on.

#![allow(clippy::disallowed_types)] // the bare client reads ACLs and plants nodes, on purpose

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use mazurka::testkit::{expire_session, unique_chroot, FaultProxy};
use mazurka::{AclPolicy, Atom, BlobOptions, Error, Pod, Ref, Session};
use tokio::time::timeout;
use zookeeper_client as zk;

const BOUND: Duration = Duration::from_secs(15);
/// How long a refused call may take: one round trip, not a reconnect or a timeout.
const PROMPT: Duration = Duration::from_secs(3);
const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

async fn owner(chroot: &str, policy: AclPolicy) -> Session {
    Session::builder(format!("{}{chroot}", common::server().connect_string()))
        .digest_auth(USER, PASSWORD)
        .acl(policy)
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

/// A bare client on the shared server, authenticated as `user:password` if given.
async fn raw(auth: Option<(&str, &str)>) -> zk::Client {
    raw_at(&common::server().connect_string(), auth).await
}

async fn raw_at(connect: &str, auth: Option<(&str, &str)>) -> zk::Client {
    let mut connector = zk::Client::connector();
    if let Some((user, password)) = auth {
        connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
    }
    connector.connect(connect).await.unwrap()
}

/// The ACL the policy should give, as ZooKeeper records it for alice: learnt from the server by
/// creating a node with the `auth` ACL and reading it back.
async fn expected_acl(alice: &zk::Client, scratch: &str, policy: AclPolicy) -> Vec<zk::Acl> {
    alice
        .mkdir(
            scratch,
            &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        )
        .await
        .unwrap();
    let (mut acl, _) = alice.get_acl(scratch).await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    if policy == AclPolicy::CreatorAllAnyoneRead {
        acl.push(zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()));
    }
    acl
}

/// Every znode at and below `root`, with its ACL.
async fn tree_acls(client: &zk::Client, root: &str) -> BTreeMap<String, Vec<zk::Acl>> {
    let mut found = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let Ok((acl, _)) = client.get_acl(&path).await else {
            continue; // gone meanwhile
        };
        for child in client.list_children(&path).await.unwrap_or_default() {
            todo.push(format!("{}/{child}", path.trim_end_matches('/')));
        }
        found.insert(path, acl);
    }
    found
}

fn sorted(mut acl: Vec<zk::Acl>) -> Vec<String> {
    let mut shown: Vec<String> = acl
        .drain(..)
        .map(|a| format!("{}:{}={}", a.scheme(), a.id(), a.permission()))
        .collect();
    shown.sort();
    shown
}

#[tokio::test]
async fn every_kind_of_node_carries_the_policy_and_other_credentials_are_kept_out() {
    for policy in [AclPolicy::CreatorOnly, AclPolicy::CreatorAllAnyoneRead] {
        acl_matrix(policy).await;
    }
}

async fn acl_matrix(policy: AclPolicy) {
    let chroot = unique_chroot("acl-matrix");
    let session = owner(&chroot, policy).await;
    let alice = raw(Some((USER, PASSWORD))).await;
    let expected = sorted(expected_acl(&alice, &format!("{chroot}-expected"), policy).await);

    // A waiter parked on a condition (its node lives while it waits) ...
    let lock = session.lock("/app/locks/job").unwrap();
    let ready = lock.new_condition("ready").unwrap();
    let waiter = {
        let (lock, ready) = (lock.clone(), ready.clone());
        tokio::spawn(async move {
            let mut guard = lock.lock().await.unwrap();
            let signalled = ready.wait_for(&mut guard, BOUND).await.unwrap();
            guard.release().await.unwrap();
            signalled
        })
    };
    common::eventually(15, "the waiter waits", || async {
        ready.waiter_count().await.unwrap() == 1
    })
    .await;
    // ... a holder, a reader, refs, an atom, a pod and its lock, a chunked value.
    let guard = timeout(BOUND, lock.lock()).await.unwrap().unwrap();
    let rw = session.rw_lock("/app/rw/catalog").unwrap();
    let read = rw.read().await.unwrap();
    let r = Ref::<u64>::new(&session, "/app/refs/a", 1).await.unwrap();
    let atom = Atom::<u64>::new(&session, "/app/atoms/n", 0).await.unwrap();
    let pod = Pod::<u64>::new(&session, "/app/pods/p", 0).await.unwrap();
    let pod_guard = pod.lock().lock().await.unwrap();
    let small_chunks = BlobOptions::default().inline_limit(1024).chunk_bytes(2048);
    let big = Ref::<Vec<u8>>::new_with(&session, "/app/blobs/big", vec![7u8; 6000], small_chunks)
        .await
        .unwrap();

    let tree = tree_acls(&alice, &chroot).await;
    for (path, acl) in &tree {
        assert_eq!(
            sorted(acl.clone()),
            expected,
            "{policy:?}: {path} has the wrong ACL"
        );
    }
    let under = |prefix: &str| {
        tree.keys()
            .filter(|p| p.starts_with(&format!("{chroot}{prefix}")))
            .count()
    };
    for (kind, prefix, at_least) in [
        ("the chroot and the parents", "/app", 1),
        ("lock directory and holder node", "/app/locks/job/", 1),
        (
            "condition directory and waiter node",
            "/app/locks/job.condition.ready/",
            1,
        ),
        ("read-write lock reader node", "/app/rw/catalog/", 1),
        ("ref and its parent", "/app/refs/a", 1),
        ("atom", "/app/atoms/n", 1),
        ("pod", "/app/pods/p", 1),
        ("pod lock node", "/app/pods/p.lock/", 1),
        ("chunk set and chunks", "/app/blobs/big.blobs/", 3),
    ] {
        assert!(
            under(prefix) >= at_least,
            "{policy:?}: no {kind} under {prefix} in {:?}",
            tree.keys()
        );
    }
    assert!(tree.contains_key(&chroot) && tree.contains_key(&format!("{chroot}/app/refs")));

    // Wrong password: refused within a round trip, for reads (CreatorOnly) and writes (both).
    let stranger = Session::builder(format!("{}{chroot}", common::server().connect_string()))
        .digest_auth(USER, "wrong-password")
        .connect()
        .await
        .unwrap();
    let denied = |what: &str, result: Result<(), Error>| match result {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("{policy:?}: {what}: expected PermissionDenied, got {other:?}"),
    };
    let reads_refused = policy == AclPolicy::CreatorOnly;
    let theirs = timeout(PROMPT, Ref::<u64>::open(&stranger, "/app/refs/a"))
        .await
        .unwrap();
    match theirs {
        Ok(theirs) => {
            assert!(!reads_refused, "a CreatorOnly ref opened with the wrong password");
            assert_eq!(timeout(PROMPT, theirs.deref_sync()).await.unwrap().unwrap(), 1);
            let write = timeout(PROMPT, mazurka::dosync(|| theirs.alter(|v| v + 1)))
                .await
                .unwrap();
            denied("ref write", write.map(drop));
        }
        Err(err) => {
            assert!(reads_refused, "{policy:?}: reading a ref: {err:?}");
            denied("ref read", Err(err));
        }
    }
    match timeout(PROMPT, Atom::<u64>::open(&stranger, "/app/atoms/n"))
        .await
        .unwrap()
    {
        Ok(theirs) => {
            assert!(
                !reads_refused,
                "a CreatorOnly atom opened with the wrong password"
            );
            denied(
                "atom swap",
                timeout(PROMPT, theirs.swap(|v| v + 1)).await.unwrap().map(drop),
            );
        }
        Err(err) => {
            assert!(reads_refused, "{policy:?}: reading an atom: {err:?}");
            denied("atom read", Err(err));
        }
    }
    let their_lock = stranger.lock("/app/locks/job").unwrap();
    denied(
        "try_lock",
        timeout(PROMPT, their_lock.try_lock()).await.unwrap().map(drop),
    );
    let their_ready = their_lock.new_condition("ready").unwrap();
    match timeout(PROMPT, their_ready.signal()).await.unwrap() {
        // Refused before any request: they cannot hold the lock to signal with.
        Err(Error::NotHeld { .. }) => {}
        other => panic!("{policy:?}: signal without the lock: {other:?}"),
    }
    if reads_refused {
        denied(
            "condition waiter count",
            timeout(PROMPT, their_ready.waiter_count())
                .await
                .unwrap()
                .map(drop),
        );
    }
    denied(
        "read lock",
        timeout(PROMPT, stranger.rw_lock("/app/rw/catalog").unwrap().try_read())
            .await
            .unwrap()
            .map(drop),
    );

    // The owner's work is untouched.
    assert!(ready.signal().await.unwrap());
    guard.release().await.unwrap();
    assert!(timeout(BOUND, waiter).await.unwrap().unwrap());
    read.release().await.unwrap();
    pod_guard.release().await.unwrap();
    assert_eq!(r.deref_sync().await.unwrap(), 1);
    assert_eq!(atom.deref_sync().await.unwrap(), 0);
    assert_eq!(big.deref_sync().await.unwrap().len(), 6000);
}

#[tokio::test]
async fn nodes_created_after_an_expiry_are_still_creator_only() {
    let chroot = unique_chroot("acl-expiry");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let session = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .digest_auth(USER, PASSWORD)
        .acl(AclPolicy::CreatorOnly)
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let alice = raw(Some((USER, PASSWORD))).await;
    let expected = sorted(expected_acl(&alice, &format!("{chroot}-expected"), AclPolicy::CreatorOnly).await);
    let before = session.lock("/before").unwrap().lock().await.unwrap();
    let old_id = session.id();

    expire_session(&session, &proxy).await.unwrap();
    drop(before);

    // New work runs on a new ZooKeeper session, which presents the credentials again.
    let guard = timeout(BOUND, session.lock("/after/lock").unwrap().lock())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(session.id(), old_id);
    let _r = Ref::<u32>::new(&session, "/after/refs/a", 5).await.unwrap();
    let _atom = Atom::<u32>::new(&session, "/after/atom", 5).await.unwrap();
    let tree = tree_acls(&alice, &format!("{chroot}/after")).await;
    assert!(tree.len() >= 6, "{:?}", tree.keys());
    for (path, acl) in tree {
        assert_eq!(sorted(acl), expected, "{path} has the wrong ACL");
    }
    let anonymous = Session::connect(format!("{}{chroot}", common::server().connect_string()))
        .await
        .unwrap();
    match timeout(PROMPT, anonymous.lock("/after/lock").unwrap().try_lock())
        .await
        .unwrap()
    {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    guard.release().await.unwrap();
}

/// Creates `path` with the bare client and `acls` (parents must exist).
async fn plant(client: &zk::Client, path: &str, acls: zk::Acls<'static>) {
    client
        .create(path, b"", &zk::CreateMode::Persistent.with_acls(acls))
        .await
        .unwrap();
}

fn assert_weak(result: Result<(), Error>, path: &str) {
    match result {
        Err(Error::WeakAcl { path: p, detail }) => {
            assert_eq!(p, path, "{detail}");
            assert!(detail.contains("world:anyone"), "{detail}");
            let message = Error::WeakAcl { path: p, detail }.to_string();
            assert!(message.contains(path) && message.contains("setAcl"), "{message}");
        }
        other => panic!("expected WeakAcl for {path}, got {other:?}"),
    }
}

#[tokio::test]
async fn pre_created_nodes_with_a_weaker_acl_are_refused() {
    let base = unique_chroot("acl-planted");
    let alice = raw(Some((USER, PASSWORD))).await;
    let mine = zk::Acls::creator_all;
    // Directories of the application, as a CreatorOnly session of alice would make them...
    alice
        .mkdir(
            &format!("{base}/locks"),
            &zk::CreateMode::Persistent.with_acls(mine()),
        )
        .await
        .unwrap();
    for dir in ["refs", "blobs", "values"] {
        plant(&alice, &format!("{base}/{dir}"), mine()).await;
    }
    // ... and, among them, nodes made open (an older deployment, a script with the default ACL).
    plant(&alice, &format!("{base}/locks/open"), zk::Acls::anyone_all()).await;
    plant(&alice, &format!("{base}/locks/fine"), mine()).await;
    plant(&alice, &format!("{base}/refs/open"), zk::Acls::anyone_all()).await;
    plant(&alice, &format!("{base}/blobs/big.blobs"), zk::Acls::anyone_all()).await;
    plant(&alice, &format!("{base}/values/open"), zk::Acls::anyone_all()).await;
    let session = Session::builder(common::server().connect_string())
        .digest_auth(USER, PASSWORD)
        .acl(AclPolicy::CreatorOnly)
        .connect()
        .await
        .unwrap();

    let lock = session.lock(format!("{base}/locks/open")).unwrap();
    assert_weak(
        timeout(PROMPT, lock.try_lock()).await.unwrap().map(drop),
        &format!("{base}/locks/open"),
    );
    assert_weak(
        timeout(PROMPT, lock.lock()).await.unwrap().map(drop),
        &format!("{base}/locks/open"),
    );
    let rw = session.rw_lock(format!("{base}/locks/open")).unwrap();
    assert_weak(
        timeout(PROMPT, rw.try_write()).await.unwrap().map(drop),
        &format!("{base}/locks/open"),
    );
    assert_weak(
        Ref::<u8>::new(&session, format!("{base}/refs/open/a"), 1)
            .await
            .map(drop),
        &format!("{base}/refs/open"),
    );
    assert_weak(
        Atom::<u8>::new(&session, format!("{base}/refs/open/b"), 1)
            .await
            .map(drop),
        &format!("{base}/refs/open"),
    );
    let chunked = BlobOptions::default().inline_limit(1024);
    assert_weak(
        Ref::<Vec<u8>>::new_with(&session, format!("{base}/blobs/big"), vec![1u8; 4000], chunked)
            .await
            .map(drop),
        &format!("{base}/blobs/big.blobs"),
    );
    // A node that is itself the value, pre-created open.
    assert_weak(
        Ref::<u8>::new(&session, format!("{base}/values/open"), 1)
            .await
            .map(drop),
        &format!("{base}/values/open"),
    );
    // The same, when a large initial value would have gone to chunks first.
    assert_weak(
        Ref::<Vec<u8>>::new_with(
            &session,
            format!("{base}/values/open"),
            vec![1u8; 4000],
            BlobOptions::default().inline_limit(1024),
        )
        .await
        .map(drop),
        &format!("{base}/values/open"),
    );
    // Nothing was left in the refused directories.
    for dir in ["locks/open", "refs/open", "blobs/big.blobs"] {
        assert!(
            alice
                .list_children(&format!("{base}/{dir}"))
                .await
                .unwrap()
                .is_empty(),
            "something was created in {dir}"
        );
    }

    // Directories as closed as the policy are used, whoever of alice's sessions made them; the
    // first use checks them once.
    let fine = session.lock(format!("{base}/locks/fine")).unwrap();
    fine.try_lock().await.unwrap().unwrap().release().await.unwrap();
    fine.try_lock().await.unwrap().unwrap().release().await.unwrap();
    // An open session does not care.
    let open = Session::builder(common::server().connect_string())
        .digest_auth(USER, PASSWORD)
        .connect()
        .await
        .unwrap();
    let theirs = open.lock(format!("{base}/locks/open")).unwrap();
    theirs.try_lock().await.unwrap().unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_chain_planted_by_someone_else_and_an_open_chroot_are_refused() {
    // Someone else got there first, with ZooKeeper's default open ACL, all the way down.
    let base = unique_chroot("acl-squatter");
    let squatter = raw(None).await;
    squatter
        .mkdir(
            &format!("{base}/locks/job"),
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let session = Session::builder(common::server().connect_string())
        .digest_auth(USER, PASSWORD)
        .acl(AclPolicy::CreatorOnly)
        .connect()
        .await
        .unwrap();
    let lock = session.lock(format!("{base}/locks/job")).unwrap();
    // The first weak node of the chain is named.
    assert_weak(timeout(PROMPT, lock.try_lock()).await.unwrap().map(drop), &base);
    assert!(squatter
        .list_children(&format!("{base}/locks/job"))
        .await
        .unwrap()
        .is_empty());

    // A chroot made open by someone else: refused when connecting.
    let connected = Session::builder(format!("{}{base}", common::server().connect_string()))
        .digest_auth(USER, PASSWORD)
        .acl(AclPolicy::CreatorOnly)
        .connect()
        .await;
    assert_weak(connected.map(drop), &base);
}

/// Requests the server has received so far (`srvr`'s `Received`).
fn received(server: &mazurka::testkit::ZkServer) -> u64 {
    let srvr = server.four_letter_word("srvr").unwrap();
    srvr.lines()
        .find_map(|l| l.strip_prefix("Received: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Received line in {srvr}"))
}

/// Requests `n` lock/release cycles cost on `server`.
async fn cycles_cost(server: &mazurka::testkit::ZkServer, session: &Session, path: &str, n: usize) -> u64 {
    let lock = session.lock(path).unwrap();
    let before = received(server);
    for _ in 0..n {
        lock.lock().await.unwrap().release().await.unwrap();
    }
    received(server) - before
}

#[tokio::test]
async fn a_restrictive_policy_costs_no_request_once_its_directories_are_known() {
    // A server of its own: the count of requests it received is the measure.
    let server = mazurka::testkit::ZkServer::start().unwrap();
    let connect = |policy| {
        Session::builder(server.connect_string())
            .digest_auth(USER, PASSWORD)
            .acl(policy)
            .session_timeout(Duration::from_secs(4))
            .connect()
    };
    let open = connect(AclPolicy::Open).await.unwrap();
    let closed = connect(AclPolicy::CreatorOnly).await.unwrap();
    const N: usize = 20;
    // The first use makes (or checks) the directories...
    let open_first = cycles_cost(&server, &open, "/open/a/lock", 1).await;
    let closed_first = cycles_cost(&server, &closed, "/closed/a/lock", 1).await;
    // ... a directory made by someone else with the same credentials is checked once ...
    let alice = raw_at(&server.connect_string(), Some((USER, PASSWORD))).await;
    alice
        .create(
            "/closed/a/theirs",
            b"",
            &zk::CreateMode::Container.with_acls(zk::Acls::creator_all()),
        )
        .await
        .unwrap();
    let found_first = cycles_cost(&server, &closed, "/closed/a/theirs", 1).await;
    let found_again = cycles_cost(&server, &closed, "/closed/a/theirs", 1).await;
    // ... and then a cycle costs what it costs under the open policy.
    let open_cost = cycles_cost(&server, &open, "/open/a/lock", N).await;
    let closed_cost = cycles_cost(&server, &closed, "/closed/a/lock", N).await;
    eprintln!(
        "requests: first cycle open {open_first}, CreatorOnly {closed_first}; in a directory found there \
         {found_first}, then {found_again}; {N} cycles open {open_cost}, CreatorOnly {closed_cost}"
    );
    assert_eq!(
        found_first,
        found_again + 1,
        "one getACL for a directory found there"
    );
    // Slack for a container reaped between two cycles (re-made by either session alike).
    assert!(
        closed_cost <= open_cost + 3,
        "CreatorOnly {closed_cost} requests for {N} cycles, open {open_cost}"
    );
}
