//! The large-value workloads of the bench (`mazurka::blob`): write and read throughput of a 5 MB
//! and a 20 MB value, against the floor of moving the same bytes with the bare ZooKeeper client.
//!
//! | workload | one op |
//! |---|---|
//! | `blob_write_{5,20}mb` | `Atom::reset` of a new value: its chunk set (pipelined creates), then the pointer `multi` |
//! | `blob_read_{5,20}mb` | `Atom::deref_sync`: `sync`, the pointer, its chunks (pipelined gets), SHA-256 check, decode |
//! | `blob_floor_{5,20}mb` | the same bytes as plain `set_data` calls of 1 MB chunks, one after another |
//! | `blob_floor_pipelined_{5,20}mb` | the same `set_data` calls, all sent before awaiting any |
//! | `blob_floor_read_{5,20}mb` | the same bytes as plain `get_data` calls of 1 MB chunks, pipelined |
//!
//! One client (one session). Each line carries `mb_per_s` (value bytes moved per second of op
//! time, MB = 10^6 bytes) and `value_bytes`.

#![allow(clippy::disallowed_types)] // the floor uses the bare client on purpose

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mazurka::{Atom, BlobOptions, Session};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zookeeper_client as zk;

use super::{run_workload, BoxFut, Config, Op};

/// Chunk size of the floor, as in the issue: 1 MB.
const FLOOR_CHUNK: usize = 1_000_000;

/// Bytes serialized as one byte string (as `serde_bytes` would).
#[derive(Clone, Default, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
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

fn generate(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Per-op bytes and times, for `mb_per_s`. One client runs its ops one after another, so the
/// last `ops` records are the timed ones (the warm-up's come first).
#[derive(Default)]
struct Moved(std::sync::Mutex<Vec<(usize, Duration)>>);

impl Moved {
    fn add(&self, bytes: usize, took: Duration) {
        if let Ok(mut records) = self.0.lock() {
            records.push((bytes, took));
        }
    }

    fn fields(&self, ops: usize, value_bytes: usize) -> Vec<(String, serde_json::Value)> {
        let records = self.0.lock().map(|r| r.clone()).unwrap_or_default();
        let timed = &records[records.len().saturating_sub(ops)..];
        let secs: f64 = timed.iter().map(|(_, t)| t.as_secs_f64()).sum();
        let mb = timed.iter().map(|(b, _)| *b as f64).sum::<f64>() / 1e6;
        let rate = if secs > 0.0 { mb / secs } else { 0.0 };
        vec![
            ("mb_per_s".into(), ((rate * 10.0).round() / 10.0).into()),
            ("value_bytes".into(), value_bytes.into()),
        ]
    }
}

/// `blob_write_*`: reset the atom to the other of two values.
struct Write {
    atom: Atom<Blob>,
    values: [Blob; 2],
    next: AtomicUsize,
    moved: Arc<Moved>,
}

impl Op for Write {
    async fn run(&self) -> Result<Duration, String> {
        let value = self.values[self.next.fetch_add(1, Ordering::Relaxed) % 2].clone();
        let t = Instant::now();
        self.atom.reset(value).await.map_err(|e| e.to_string())?;
        let took = t.elapsed();
        self.moved.add(self.values[0].0.len(), took);
        Ok(took)
    }
}

/// `blob_read_*`: a fresh read of the whole value.
struct Read {
    atom: Atom<Blob>,
    len: usize,
    moved: Arc<Moved>,
}

impl Op for Read {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let value = self.atom.deref_sync().await.map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if value.0.len() != self.len {
            return Err(format!("read {} bytes, expected {}", value.0.len(), self.len));
        }
        self.moved.add(self.len, took);
        Ok(took)
    }
}

/// `blob_floor_*`: the same bytes with the bare client, in 1 MB chunks.
struct Floor {
    client: zk::Client,
    paths: Vec<String>,
    chunks: Vec<Vec<u8>>,
    mode: FloorMode,
    moved: Arc<Moved>,
}

#[derive(Clone, Copy, PartialEq)]
enum FloorMode {
    Sequential,
    Pipelined,
    Read,
}

impl Op for Floor {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        match self.mode {
            FloorMode::Sequential => {
                for (path, chunk) in self.paths.iter().zip(&self.chunks) {
                    self.client
                        .set_data(path, chunk, None)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            FloorMode::Pipelined => {
                // The client queues each request when called: all go out before the first reply.
                let sent: Vec<_> = self
                    .paths
                    .iter()
                    .zip(&self.chunks)
                    .map(|(path, chunk)| self.client.set_data(path, chunk, None))
                    .collect();
                for reply in sent {
                    reply.await.map_err(|e| e.to_string())?;
                }
            }
            FloorMode::Read => {
                let sent: Vec<_> = self.paths.iter().map(|path| self.client.get_data(path)).collect();
                for reply in sent {
                    reply.await.map_err(|e| e.to_string())?;
                }
            }
        }
        let took = t.elapsed();
        self.moved.add(self.chunks.iter().map(Vec::len).sum(), took);
        Ok(took)
    }
}

/// The value size a workload name asks for (`…_5mb`, `…_20mb`).
fn size_of(name: &str) -> Option<usize> {
    let mb: usize = name.strip_suffix("mb")?.rsplit('_').next()?.parse().ok()?;
    Some(mb * 1_000_000)
}

/// Whether `name` is one of these workloads.
pub(crate) fn is_blob(name: &str) -> bool {
    name.starts_with("blob_") && size_of(name).is_some()
}

/// Runs one of these workloads.
pub(crate) async fn run(cfg: &Config, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let size = size_of(name).ok_or("blob workloads end in _<size>mb")?;
    let moved = Arc::new(Moved::default());
    let root = format!("/bench/blob-{}-{name}", std::process::id());
    // Retired chunk sets go soon (the server holds every value in memory meanwhile).
    let options = BlobOptions::default().grace(Duration::from_secs(1));
    let default_ops = if size > 10_000_000 { 10 } else { 20 };
    let ops = cfg.ops.unwrap_or(default_ops);
    let fields = {
        let moved = moved.clone();
        move || -> BoxFut<'static, Vec<(String, serde_json::Value)>> {
            let fields = moved.fields(ops, size);
            Box::pin(async move { fields })
        }
    };
    let m = moved.clone();
    if name.starts_with("blob_write_") {
        run_workload(
            cfg,
            name,
            1,
            default_ops,
            move |s: Session, _| {
                let (root, options, moved) = (root.clone(), options.clone(), m.clone());
                Box::pin(async move {
                    let atom = Atom::new_with(&s, root, Blob::default(), options).await?;
                    Ok(Arc::new(Write {
                        atom,
                        values: [Blob(generate(1, size)), Blob(generate(2, size))],
                        next: AtomicUsize::new(0),
                        moved,
                    }))
                })
            },
            fields,
        )
        .await
    } else if name.starts_with("blob_read_") {
        run_workload(
            cfg,
            name,
            1,
            default_ops,
            move |s: Session, _| {
                let (root, options, moved) = (root.clone(), options.clone(), m.clone());
                Box::pin(async move {
                    let atom = Atom::new_with(&s, root, Blob(generate(3, size)), options).await?;
                    Ok(Arc::new(Read {
                        atom,
                        len: size,
                        moved,
                    }))
                })
            },
            fields,
        )
        .await
    } else {
        let mode = if name.starts_with("blob_floor_pipelined_") {
            FloorMode::Pipelined
        } else if name.starts_with("blob_floor_read_") {
            FloorMode::Read
        } else {
            FloorMode::Sequential
        };
        let data = generate(4, size);
        let chunks: Vec<Vec<u8>> = data.chunks(FLOOR_CHUNK).map(<[u8]>::to_vec).collect();
        let connect = cfg.connect.clone();
        run_workload(
            cfg,
            name,
            1,
            default_ops,
            move |_: Session, _| {
                let (root, chunks, connect, moved) =
                    (root.clone(), chunks.clone(), connect.clone(), m.clone());
                Box::pin(async move {
                    let client = zk::Client::connector()
                        .with_session_timeout(Duration::from_secs(10)) // as the bench's sessions
                        .connect(&connect)
                        .await
                        .map_err(|e| mazurka::Error::Config(e.to_string()))?;
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    client
                        .mkdir(&root, &options)
                        .await
                        .map_err(|e| mazurka::Error::Config(e.to_string()))?;
                    let mut paths = Vec::new();
                    for (i, chunk) in chunks.iter().enumerate() {
                        let path = format!("{root}/{i}");
                        // Created full, so that a read floor reads the same bytes.
                        let data: &[u8] = if mode == FloorMode::Read { chunk } else { &[] };
                        client
                            .create(&path, data, &options)
                            .await
                            .map_err(|e| mazurka::Error::Config(e.to_string()))?;
                        paths.push(path);
                    }
                    Ok(Arc::new(Floor {
                        client,
                        paths,
                        chunks,
                        mode,
                        moved,
                    }))
                })
            },
            fields,
        )
        .await
    }
}
