//! The pointer an envelope carries when its chunked flag is set, and the record kept in a chunk
//! set's znode. Formats in the module docs of [`blob`](super).

use sha2::{Digest, Sha256};

/// Where a chunk set's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// Chunk znodes under the set's znode.
    ZooKeeper,
    /// One object in the handle's external store.
    External,
}

impl StoreKind {
    fn id(self) -> u8 {
        match self {
            StoreKind::ZooKeeper => 0,
            StoreKind::External => 1,
        }
    }

    fn from_id(id: u8) -> Option<StoreKind> {
        match id {
            0 => Some(StoreKind::ZooKeeper),
            1 => Some(StoreKind::External),
            _ => None,
        }
    }
}

const POINTER_FORMAT: u8 = 1;
const POINTER_FIXED: usize = 68;

/// A chunk set, as named by a pointer envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    pub(crate) store: StoreKind,
    pub(crate) set_id: u128,
    pub(crate) len: u64,
    pub(crate) chunks: u32,
    pub(crate) chunk_size: u32,
    pub(crate) sha256: [u8; 32],
    /// The external object's key (empty for ZooKeeper chunks).
    pub(crate) key: String,
}

impl Pointer {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let key = self.key.as_bytes();
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = key.get(..usize::from(key_len)).unwrap_or(key);
        let mut out = Vec::with_capacity(POINTER_FIXED + key.len());
        out.push(POINTER_FORMAT);
        out.push(self.store.id());
        out.extend_from_slice(&self.set_id.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        out
    }

    /// Parses a pointer; `Err` says what is wrong with it.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Pointer, String> {
        let fixed = bytes.first_chunk::<POINTER_FIXED>().ok_or_else(|| {
            format!(
                "the chunk pointer is {} bytes, shorter than {POINTER_FIXED}",
                bytes.len()
            )
        })?;
        let field = |range: std::ops::Range<usize>| fixed.get(range).unwrap_or(&[]);
        if fixed[0] != POINTER_FORMAT {
            return Err(format!(
                "unknown chunk pointer format {}; upgrade Mazurka to read it",
                fixed[0]
            ));
        }
        let store =
            StoreKind::from_id(fixed[1]).ok_or_else(|| format!("unknown chunk store kind {}", fixed[1]))?;
        let le16 = |r| <[u8; 16]>::try_from(field(r)).unwrap_or_default();
        let le8 = |r| <[u8; 8]>::try_from(field(r)).unwrap_or_default();
        let le4 = |r| <[u8; 4]>::try_from(field(r)).unwrap_or_default();
        let le2 = |r| <[u8; 2]>::try_from(field(r)).unwrap_or_default();
        let sha256 = <[u8; 32]>::try_from(field(34..66)).unwrap_or_default();
        let key_len = usize::from(u16::from_le_bytes(le2(66..68)));
        let key = bytes
            .get(POINTER_FIXED..)
            .filter(|rest| rest.len() == key_len)
            .ok_or_else(|| "the chunk pointer's key length does not match its size".to_owned())?;
        let key =
            String::from_utf8(key.to_vec()).map_err(|_| "the chunk pointer's key is not UTF-8".to_owned())?;
        let pointer = Pointer {
            store,
            set_id: u128::from_le_bytes(le16(2..18)),
            len: u64::from_le_bytes(le8(18..26)),
            chunks: u32::from_le_bytes(le4(26..30)),
            chunk_size: u32::from_le_bytes(le4(30..34)),
            sha256,
            key,
        };
        if store == StoreKind::ZooKeeper {
            let expected = chunk_count(pointer.len, pointer.chunk_size);
            if pointer.chunk_size == 0 || Some(u64::from(pointer.chunks)) != expected {
                return Err(format!(
                    "the chunk pointer is inconsistent: {} bytes in {} chunks of {}",
                    pointer.len, pointer.chunks, pointer.chunk_size
                ));
            }
        }
        Ok(pointer)
    }

    /// The name of the set's znode under `<path>.blobs`.
    pub(crate) fn set_name(&self) -> String {
        set_name(self.set_id)
    }
}

pub(crate) fn set_name(set_id: u128) -> String {
    format!("{set_id:032x}")
}

/// Whether a child of `<path>.blobs` is named like a chunk set.
pub(crate) fn parse_set_name(name: &str) -> Option<u128> {
    if name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        u128::from_str_radix(name, 16).ok()
    } else {
        None
    }
}

/// Chunks of `chunk_size` bytes needed for `len` bytes (at least one).
pub(crate) fn chunk_count(len: u64, chunk_size: u32) -> Option<u64> {
    if chunk_size == 0 {
        return None;
    }
    Some(len.div_ceil(u64::from(chunk_size)).max(1))
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

const RECORD_MAGIC: [u8; 4] = *b"MZKB";
const RECORD_FORMAT: u8 = 1;

/// The data of a chunk set's znode: which store, the external key, and a state byte for people
/// (the znode's version is what counts: 0 = live or being written, ≥ 1 = retired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetRecord {
    pub(crate) store: StoreKind,
    pub(crate) retired: bool,
    pub(crate) key: String,
}

impl SetRecord {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let key = self.key.as_bytes();
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = key.get(..usize::from(key_len)).unwrap_or(key);
        let mut out = Vec::with_capacity(9 + key.len());
        out.extend_from_slice(&RECORD_MAGIC);
        out.push(RECORD_FORMAT);
        out.push(self.store.id());
        out.push(u8::from(self.retired));
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        out
    }

    pub(crate) fn parse(bytes: &[u8]) -> Option<SetRecord> {
        let (head, key) = bytes.split_first_chunk::<9>()?;
        let [m0, m1, m2, m3, format, store, retired, l0, l1] = *head;
        if [m0, m1, m2, m3] != RECORD_MAGIC || format != RECORD_FORMAT {
            return None;
        }
        if key.len() != usize::from(u16::from_le_bytes([l0, l1])) {
            return None;
        }
        Some(SetRecord {
            store: StoreKind::from_id(store)?,
            retired: retired != 0,
            key: String::from_utf8(key.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trip_and_checks() {
        let p = Pointer {
            store: StoreKind::ZooKeeper,
            set_id: 0xabc,
            len: 2_500_000,
            chunks: 3,
            chunk_size: 1_000_000,
            sha256: sha256(b"x"),
            key: String::new(),
        };
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), POINTER_FIXED);
        assert_eq!(Pointer::parse(&bytes).unwrap(), p);
        assert_eq!(p.set_name(), format!("{}abc", "0".repeat(29)));
        assert_eq!(parse_set_name(&p.set_name()), Some(0xabc));
        assert_eq!(parse_set_name("lock"), None);
        // Inconsistent chunk count, short input, unknown format.
        let mut bad = bytes.clone();
        bad[26] = 4;
        assert!(Pointer::parse(&bad).is_err());
        assert!(Pointer::parse(&bytes[..10]).is_err());
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(Pointer::parse(&newer).unwrap_err().contains("upgrade"));

        let ext = Pointer {
            store: StoreKind::External,
            chunks: 0,
            key: "a/b.blobs/1.ff".into(),
            ..p
        };
        assert_eq!(Pointer::parse(&ext.to_bytes()).unwrap(), ext);
        let mut cut = ext.to_bytes();
        cut.pop();
        assert!(Pointer::parse(&cut).is_err());
    }

    #[test]
    fn record_round_trip() {
        let r = SetRecord {
            store: StoreKind::External,
            retired: true,
            key: "k".into(),
        };
        assert_eq!(SetRecord::parse(&r.to_bytes()).unwrap(), r);
        assert_eq!(SetRecord::parse(b"nope"), None);
        assert_eq!(chunk_count(0, 10), Some(1));
        assert_eq!(chunk_count(10, 10), Some(1));
        assert_eq!(chunk_count(11, 10), Some(2));
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
