//! How values are stored in znodes: the [`Codec`] trait, the [`Bincode`] and [`Json`] codecs, and
//! the small self-describing [`Envelope`] every Mazurka value is wrapped in.
//!
//! # The envelope
//!
//! A znode written by Mazurka holds a fixed 24-byte header, a short write history, then the
//! payload:
//!
//! | bytes | field |
//! |---|---|
//! | `0..4` | magic, `b"MZKA"` ([`MAGIC`]) |
//! | `4` | format version, `1` ([`FORMAT_VERSION`]) |
//! | `5` | codec id ([`Codec::ID`]: 1 = [`Bincode`], 2 = [`Json`]) |
//! | `6` | flags: bit 0 = chunked (the payload is a pointer to a chunk set instead of the value: see [`blob`](crate::blob)); the other bits are 0 in version 1 |
//! | `7` | history length `n`, at most [`MAX_HISTORY`] |
//! | `8..24` | writer id: the [`WriterId`] of the transaction or operation that wrote the value, `u128` little-endian; 0 = unknown |
//! | `24..24+20n` | history, newest first: `n` × (writer id `u128` LE, znode version `i32` LE) of the writes before this one |
//! | rest | payload, as encoded by the codec |
//!
//! The writer id and history let a writer whose reply was lost decide, by reading the znode back,
//! whether its write landed (see the design notes on ambiguous commits).
//!
//! Reading checks everything before decoding: bytes not written by Mazurka, a newer format, a value
//! written with another codec or stored in chunks are all typed [`CodecError`]s, never garbage.
//!
//! ```
//! use mazurka::codec::{decode_value, encode_value, HistoryEntry, WriterId};
//! use mazurka::{Bincode, CodecError, Json};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Account {
//!     owner: String,
//!     balance: i64,
//! }
//!
//! let account = Account { owner: "ada".into(), balance: 100 };
//! let writer = WriterId::random();
//! let previous = [HistoryEntry { writer: WriterId(7), version: 3 }];
//! let bytes = encode_value::<Bincode, _>(&account, writer, &previous)?;
//!
//! let (read, meta) = decode_value::<Bincode, Account>(&bytes)?;
//! assert_eq!(read, account);
//! assert_eq!(meta.writer, writer);
//! assert_eq!(meta.history, previous);
//!
//! // Reading with the other codec is a typed error, not garbage.
//! let err = decode_value::<Json, Account>(&bytes).unwrap_err();
//! assert!(matches!(err, CodecError::WrongCodec { expected: "json", .. }));
//! # Ok::<(), CodecError>(())
//! ```

mod budget;

use std::any::type_name;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CodecError, Result};

/// How values are turned into bytes and back.
///
/// A codec is a type, not a value: primitives take it as a type parameter (`Ref<T, Json>`), so the
/// choice costs nothing at run time. Its [`ID`](Codec::ID) is recorded in every envelope, so a value
/// written with one codec and read with another is reported as [`CodecError::WrongCodec`].
///
/// Id 0 is never used; ids 1 to 15 are reserved for the codecs that ship with Mazurka
/// ([`Bincode`] = 1, [`Json`] = 2). A codec of your own should pick an id from 16 to 255, different
/// from every other codec that writes the same znodes.
///
/// ```
/// use mazurka::{Bincode, Codec, Json};
///
/// let bytes = Json::encode(&vec![1, 2, 3])?;
/// assert_eq!(bytes, b"[1,2,3]");
/// let back: Vec<u8> = Bincode::decode(&Bincode::encode(&vec![1u8, 2, 3])?)?;
/// assert_eq!(back, [1, 2, 3]);
/// # Ok::<(), mazurka::CodecError>(())
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The id recorded in the envelope (byte 5).
    const ID: u8;
    /// A short lowercase name, used in error messages.
    const NAME: &'static str;

    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] when the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError>;

    /// Encodes `value` at the end of `out`. On error, `out` is left as it was.
    ///
    /// The default calls [`encode`](Codec::encode) and copies; codecs that can write in place
    /// override it.
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] when the value cannot be represented in this format.
    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&Self::encode(value)?);
        Ok(())
    }

    /// Decodes a whole byte string as a `T`; trailing bytes are an error.
    ///
    /// # Errors
    ///
    /// [`CodecError::Payload`] (naming `T`) when the bytes are not exactly one encoded `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// The name of the codec with envelope id `id`, for messages: `"bincode"`, `"json"`,
/// `"unknown codec #7"`.
///
/// ```
/// assert_eq!(mazurka::codec::codec_name(2), "json");
/// assert_eq!(mazurka::codec::codec_name(7), "unknown codec #7");
/// ```
#[must_use]
pub fn codec_name(id: u8) -> String {
    match id {
        Bincode::ID => Bincode::NAME.to_owned(),
        Json::ID => Json::NAME.to_owned(),
        other => format!("unknown codec #{other}"),
    }
}

fn encode_error<T: ?Sized>(reason: impl fmt::Display) -> CodecError {
    CodecError::Encode {
        type_name: type_name::<T>(),
        reason: reason.to_string(),
    }
}

fn payload_error<T>(reason: impl fmt::Display) -> CodecError {
    CodecError::Payload {
        type_name: type_name::<T>(),
        reason: reason.to_string(),
    }
}

/// [bincode 2](https://docs.rs/bincode/2) with its standard configuration (little-endian, variable-length
/// integers): compact and fast. The default codec.
///
/// Decoding is bounded, so a hostile length prefix cannot make the decoder reserve memory without
/// limit: strings and byte arrays may claim at most 64 MiB in all for payloads up to 4 MiB (every
/// value that fits in a znode), 1 GiB for payloads up to 64 MiB, and 4 GiB beyond. A longer claim
/// is reported as [`CodecError::Payload`]. Bytes after the value are an error too.
///
/// Sequences and maps may hold, in all, as many elements as the payload has bytes plus 2^24
/// zero-sized ones (`()`, unit structs): a forged length of 2^63 elements that take no bytes is
/// refused at once instead of decoding for ever.
///
/// Bincode has no nesting limit: for a *recursive* type (a tree of `Box`es, say) a crafted payload
/// can nest one level per byte and overflow the stack while decoding. Non-recursive types are not
/// affected; for recursive types written by untrusted parties prefer [`Json`], which stops at 128
/// levels.
///
/// ```
/// use mazurka::{Bincode, Codec, CodecError};
///
/// let bytes = Bincode::encode(&("ada", 36u8))?;
/// assert_eq!(Bincode::decode::<(String, u8)>(&bytes)?, ("ada".to_owned(), 36));
///
/// // A length prefix claiming 2^64 − 1 bytes is refused, not allocated.
/// let hostile = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
/// assert!(matches!(Bincode::decode::<String>(&hostile), Err(CodecError::Payload { .. })));
/// # Ok::<(), CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bincode;

/// Smallest decode limit, and the expansion allowed for larger payloads.
const BINCODE_MIN_LIMIT: usize = 64 << 20;
const BINCODE_MID_LIMIT: usize = 1 << 30;
/// 4 GiB − 1 on 64-bit targets, the whole address space on 32-bit ones.
const BINCODE_MAX_LIMIT: usize = u32::MAX as usize;
const BINCODE_EXPANSION: usize = 16;

impl Bincode {
    fn decode_bounded<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
        let config = bincode::config::standard();
        // Bytes bound allocations; elements (zero-sized ones cost no bytes) bound the time.
        let elements = budget::Budget::for_input(bytes.len());
        let root = || budget::Root::<T> {
            budget: &elements,
            marker: std::marker::PhantomData,
        };
        let budget = bytes.len().saturating_mul(BINCODE_EXPANSION);
        if budget <= BINCODE_MIN_LIMIT {
            bincode::serde::seed_decode_from_slice(root(), bytes, config.with_limit::<BINCODE_MIN_LIMIT>())
        } else if budget <= BINCODE_MID_LIMIT {
            bincode::serde::seed_decode_from_slice(root(), bytes, config.with_limit::<BINCODE_MID_LIMIT>())
        } else {
            bincode::serde::seed_decode_from_slice(root(), bytes, config.with_limit::<BINCODE_MAX_LIMIT>())
        }
    }
}

impl Codec for Bincode {
    const ID: u8 = 1;
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(encode_error::<T>)
    }

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        match bincode::serde::encode_into_std_write(value, out, bincode::config::standard()) {
            Ok(_) => Ok(()),
            Err(err) => {
                out.truncate(start);
                Err(encode_error::<T>(err))
            }
        }
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let (value, used) = Self::decode_bounded::<T>(bytes).map_err(payload_error::<T>)?;
        match bytes.len().checked_sub(used) {
            Some(0) => Ok(value),
            Some(extra) => Err(payload_error::<T>(format_args!(
                "{extra} unexpected bytes after the value (it ends at byte {used} of {})",
                bytes.len()
            ))),
            None => Err(payload_error::<T>("the decoder read past the end of the input")),
        }
    }
}

/// JSON via [`serde_json`]: readable by people and tools, larger and slower than [`Bincode`].
///
/// Maps must have string keys (as JSON requires), and `f64` NaN or infinities are written as
/// `null`, so they do not read back as numbers.
///
/// ```
/// use mazurka::{Codec, Json};
///
/// let bytes = Json::encode(&serde_json::json!({"owner": "ada", "balance": 100}))?;
/// assert_eq!(bytes, br#"{"balance":100,"owner":"ada"}"#);
/// # Ok::<(), mazurka::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Json;

impl Codec for Json {
    const ID: u8 = 2;
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(encode_error::<T>)
    }

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        serde_json::to_writer(&mut *out, value).map_err(|err| {
            out.truncate(start);
            encode_error::<T>(err)
        })
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(payload_error::<T>)
    }
}

/// The first bytes of every Mazurka value.
pub const MAGIC: [u8; 4] = *b"MZKA";
/// The envelope format this version of Mazurka reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the fixed part of the header, in bytes.
pub const HEADER_LEN: usize = 24;
/// Most history entries an envelope carries.
pub const MAX_HISTORY: usize = 16;
/// Length of one history entry, in bytes.
pub const HISTORY_ENTRY_LEN: usize = 20;
/// Flag bit: the payload points to chunks instead of holding the value.
const FLAG_CHUNKED: u8 = 0b0000_0001;
/// Every flag bit format version 1 defines.
const KNOWN_FLAGS: u8 = FLAG_CHUNKED;

/// The id of the transaction or operation that wrote a value; [`WriterId::UNKNOWN`] (0) when not
/// known.
///
/// Displayed as 32 lowercase hex digits.
///
/// ```
/// use mazurka::codec::WriterId;
///
/// assert_eq!(WriterId(0xbeef).to_string(), "0000000000000000000000000000beef");
/// assert_ne!(WriterId::random(), WriterId::random());
/// assert!(!WriterId::random().is_unknown());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WriterId(pub u128);

impl WriterId {
    /// "Not known": what values written without an id carry.
    pub const UNKNOWN: WriterId = WriterId(0);

    /// A fresh random id (128 bits from a cryptographically secure generator), never
    /// [`UNKNOWN`](WriterId::UNKNOWN).
    #[must_use]
    pub fn random() -> Self {
        loop {
            let id: u128 = rand::random();
            if id != 0 {
                return WriterId(id);
            }
        }
    }

    /// Whether this is [`WriterId::UNKNOWN`].
    #[must_use]
    pub fn is_unknown(self) -> bool {
        self == WriterId::UNKNOWN
    }
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterId({:032x})", self.0)
    }
}

/// One earlier write recorded in an envelope's history: who wrote, and the znode version that write
/// produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryEntry {
    /// The writer of that earlier value.
    pub writer: WriterId,
    /// The znode's data version after that write.
    pub version: i32,
}

/// What an envelope says about its value besides the payload, as returned by [`decode_value`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvelopeMeta {
    /// The codec that wrote the payload.
    pub codec_id: u8,
    /// Who wrote this value.
    pub writer: WriterId,
    /// The writes before this one, newest first (at most [`MAX_HISTORY`]).
    pub history: Vec<HistoryEntry>,
}

/// A parsed (or to-be-written) envelope: header fields plus a borrowed payload.
///
/// Most code uses [`encode_value`] and [`decode_value`]; the envelope itself is for readers that
/// follow chunk pointers and for tools.
///
/// ```
/// use mazurka::codec::{Envelope, HistoryEntry, WriterId, HEADER_LEN};
///
/// let envelope = Envelope {
///     codec_id: 2,
///     chunked: true,
///     writer: WriterId(1),
///     history: vec![HistoryEntry { writer: WriterId(2), version: 7 }],
///     payload: b"[\"/blob/chunk-0\"]",
/// };
/// let bytes = envelope.to_vec();
/// assert_eq!(bytes.len(), envelope.encoded_len());
/// assert_eq!(&bytes[..4], b"MZKA");
/// assert_eq!(Envelope::parse(&bytes)?, envelope);
/// # Ok::<(), mazurka::CodecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Envelope<'a> {
    /// The codec that wrote the payload (byte 5).
    pub codec_id: u8,
    /// Whether the payload is a pointer to chunks rather than the value (flag bit 0).
    pub chunked: bool,
    /// Who wrote this value.
    pub writer: WriterId,
    /// The writes before this one, newest first. [`write`](Envelope::write) keeps only the first
    /// [`MAX_HISTORY`].
    pub history: Vec<HistoryEntry>,
    /// The encoded value (or chunk pointer).
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses the header and history of `bytes`; the payload is borrowed, not decoded.
    ///
    /// # Errors
    ///
    /// - [`CodecError::NotMazurka`] when `bytes` is empty or does not start with [`MAGIC`];
    /// - [`CodecError::Truncated`] when it starts like a Mazurka header (a non-empty prefix of the
    ///   magic, or more) but the header or history is cut short;
    /// - [`CodecError::UnsupportedFormat`] for a format version other than [`FORMAT_VERSION`];
    /// - [`CodecError::UnknownFlags`] when flag bits other than "chunked" are set;
    /// - [`CodecError::HistoryTooLong`] when the history length exceeds [`MAX_HISTORY`].
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, CodecError> {
        let truncated = |needed: usize| CodecError::Truncated {
            needed,
            found: bytes.len(),
        };
        match bytes.first_chunk::<4>() {
            Some(magic) if *magic == MAGIC => {}
            Some(_) => return Err(CodecError::NotMazurka),
            None if !bytes.is_empty() && MAGIC.starts_with(bytes) => return Err(truncated(HEADER_LEN)),
            None => return Err(CodecError::NotMazurka),
        }
        match bytes.get(4) {
            Some(&FORMAT_VERSION) => {}
            Some(&other) => return Err(CodecError::UnsupportedFormat(other)),
            None => return Err(truncated(HEADER_LEN)),
        }
        let (header, rest) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or_else(|| truncated(HEADER_LEN))?;
        let [_, _, _, _, _, codec_id, flags, history_len, writer @ ..] = *header;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(CodecError::UnknownFlags(flags));
        }
        let count = usize::from(history_len);
        if count > MAX_HISTORY {
            return Err(CodecError::HistoryTooLong(history_len));
        }
        let history_bytes = count * HISTORY_ENTRY_LEN;
        let needed = HEADER_LEN + history_bytes;
        let (history_raw, payload) = rest
            .split_at_checked(history_bytes)
            .ok_or_else(|| truncated(needed))?;
        let history = history_raw
            .chunks_exact(HISTORY_ENTRY_LEN)
            .map(|entry| {
                let (writer, version) = entry.split_first_chunk::<16>().ok_or_else(|| truncated(needed))?;
                let version = version.first_chunk::<4>().ok_or_else(|| truncated(needed))?;
                Ok(HistoryEntry {
                    writer: WriterId(u128::from_le_bytes(*writer)),
                    version: i32::from_le_bytes(*version),
                })
            })
            .collect::<Result<Vec<_>, CodecError>>()?;
        Ok(Envelope {
            codec_id,
            chunked: flags & FLAG_CHUNKED != 0,
            writer: WriterId(u128::from_le_bytes(writer)),
            history,
            payload,
        })
    }

    /// The length of [`write`](Envelope::write)'s output, in bytes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        header_len(self.history.len()) + self.payload.len()
    }

    /// Appends the envelope (header, history, payload) to `out`. Only the first [`MAX_HISTORY`]
    /// history entries are written.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        write_header(out, self.codec_id, self.chunked, self.writer, &self.history);
        out.extend_from_slice(self.payload);
    }

    /// The envelope as a new byte vector.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// Decodes the payload as a `T` written with codec `C`.
    ///
    /// # Errors
    ///
    /// [`CodecError::WrongCodec`] when the envelope's codec is not `C`; [`CodecError::Chunked`]
    /// when the payload is a chunk pointer (follow it, then decode the reassembled bytes with
    /// [`Codec::decode`]); [`CodecError::Payload`] when the payload is not one encoded `T`.
    pub fn decode<C: Codec, T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        if self.codec_id != C::ID {
            return Err(CodecError::WrongCodec {
                expected: C::NAME,
                found: codec_name(self.codec_id),
            });
        }
        if self.chunked {
            return Err(CodecError::Chunked);
        }
        C::decode(self.payload)
    }

    /// Decodes the reassembled payload of a chunked envelope (the bytes its chunk pointer names)
    /// as a `T` written with codec `C`. Works for an inline envelope's own payload too.
    ///
    /// # Errors
    ///
    /// [`CodecError::WrongCodec`] when the envelope's codec is not `C`; [`CodecError::Payload`]
    /// when `payload` is not one encoded `T`.
    pub fn decode_fetched<C: Codec, T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, CodecError> {
        if self.codec_id != C::ID {
            return Err(CodecError::WrongCodec {
                expected: C::NAME,
                found: codec_name(self.codec_id),
            });
        }
        C::decode(payload)
    }

    /// The header fields, without the payload.
    #[must_use]
    pub fn meta(&self) -> EnvelopeMeta {
        EnvelopeMeta {
            codec_id: self.codec_id,
            writer: self.writer,
            history: self.history.clone(),
        }
    }

    /// The header fields, without the payload, consuming the envelope.
    #[must_use]
    pub fn into_meta(self) -> EnvelopeMeta {
        EnvelopeMeta {
            codec_id: self.codec_id,
            writer: self.writer,
            history: self.history,
        }
    }
}

/// Header plus history length for `history_len` entries (capped at [`MAX_HISTORY`]).
fn header_len(history_len: usize) -> usize {
    HEADER_LEN + history_len.min(MAX_HISTORY) * HISTORY_ENTRY_LEN
}

fn write_header(out: &mut Vec<u8>, codec_id: u8, chunked: bool, writer: WriterId, history: &[HistoryEntry]) {
    let history = history.get(..MAX_HISTORY).unwrap_or(history);
    let flags = if chunked { FLAG_CHUNKED } else { 0 };
    // At most MAX_HISTORY (16) entries, so the count fits in a byte.
    let count = u8::try_from(history.len()).unwrap_or(u8::MAX);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[FORMAT_VERSION, codec_id, flags, count]);
    out.extend_from_slice(&writer.0.to_le_bytes());
    for entry in history {
        out.extend_from_slice(&entry.writer.0.to_le_bytes());
        out.extend_from_slice(&entry.version.to_le_bytes());
    }
}

/// Encodes `value` with codec `C` in an inline (not chunked) envelope recording `writer` and the
/// newest [`MAX_HISTORY`] entries of `history` (newest first).
///
/// # Errors
///
/// [`CodecError::Encode`] when `C` cannot represent the value.
pub fn encode_value<C: Codec, T: Serialize + ?Sized>(
    value: &T,
    writer: WriterId,
    history: &[HistoryEntry],
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(header_len(history.len()) + 64);
    write_header(&mut out, C::ID, false, writer, history);
    C::encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a value written by [`encode_value`] with the same codec, and returns it with the
/// envelope's metadata.
///
/// Checks, in order: the magic, the format version, the header's length and flags, the codec id,
/// the chunked flag, then decodes the payload.
///
/// # Errors
///
/// Everything [`Envelope::parse`] and [`Envelope::decode`] report: [`CodecError::NotMazurka`],
/// [`CodecError::Truncated`], [`CodecError::UnsupportedFormat`], [`CodecError::UnknownFlags`],
/// [`CodecError::HistoryTooLong`], [`CodecError::WrongCodec`], [`CodecError::Chunked`] (use
/// [`Envelope::parse`] to follow chunk pointers) or [`CodecError::Payload`].
pub fn decode_value<C: Codec, T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, EnvelopeMeta), CodecError> {
    let envelope = Envelope::parse(bytes)?;
    let value = envelope.decode::<C, T>()?;
    Ok((value, envelope.into_meta()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Account {
        owner: String,
        balance: i64,
        tags: Vec<String>,
        limit: Option<u32>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Circle(f64),
        Rect { w: u16, h: u16 },
        Nested(Box<Shape>, Vec<Shape>),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Nested {
        accounts: Vec<Account>,
        shapes: BTreeMap<String, Shape>,
        pair: (u8, char),
        bytes: Vec<u8>,
        empty: Vec<u64>,
        unit: (),
    }

    fn account() -> Account {
        Account {
            owner: "ada ✓".into(),
            balance: -42,
            tags: vec!["a".into(), String::new()],
            limit: Some(7),
        }
    }

    fn nested() -> Nested {
        let mut shapes = BTreeMap::new();
        shapes.insert("u".to_owned(), Shape::Unit);
        shapes.insert("c".to_owned(), Shape::Circle(1.5));
        shapes.insert("r".to_owned(), Shape::Rect { w: 3, h: 65535 });
        shapes.insert(
            "n".to_owned(),
            Shape::Nested(
                Box::new(Shape::Unit),
                vec![
                    Shape::Rect { w: 0, h: 1 },
                    Shape::Nested(Box::new(Shape::Unit), vec![]),
                ],
            ),
        );
        Nested {
            accounts: vec![
                account(),
                Account {
                    owner: String::new(),
                    balance: i64::MIN,
                    tags: vec![],
                    limit: None,
                },
            ],
            shapes,
            pair: (255, '日'),
            bytes: vec![0, 1, 255],
            empty: vec![],
            unit: (),
        }
    }

    fn round_trip<C: Codec, T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: &T) {
        let bytes = C::encode(value).unwrap();
        assert_eq!(C::decode::<T>(&bytes).unwrap(), *value, "{}", C::NAME);
        let history = [HistoryEntry {
            writer: WriterId(9),
            version: 4,
        }];
        let enveloped = encode_value::<C, T>(value, WriterId(5), &history).unwrap();
        assert_eq!(enveloped.get(HEADER_LEN + HISTORY_ENTRY_LEN..), Some(&bytes[..]));
        let (decoded, meta) = decode_value::<C, T>(&enveloped).unwrap();
        assert_eq!(decoded, *value);
        assert_eq!(
            meta,
            EnvelopeMeta {
                codec_id: C::ID,
                writer: WriterId(5),
                history: history.to_vec()
            }
        );
    }

    fn round_trip_all<C: Codec>() {
        round_trip::<C, _>(&account());
        round_trip::<C, _>(&nested());
        round_trip::<C, _>(&Shape::Unit);
        round_trip::<C, _>(&Shape::Nested(Box::new(Shape::Circle(-0.5)), vec![Shape::Unit]));
        round_trip::<C, _>(&String::new());
        round_trip::<C, _>(&"a string with \"quotes\", \\ and \u{0}".to_owned());
        round_trip::<C, _>(&Vec::<u32>::new());
        round_trip::<C, _>(&vec![vec![1u8], vec![]]);
        round_trip::<C, _>(&u64::MAX);
        round_trip::<C, _>(&i128::MIN);
        round_trip::<C, _>(&Some(Some(false)));
        round_trip::<C, _>(&None::<u8>);
        round_trip::<C, _>(&());
        round_trip::<C, _>(&(1u8, -2i16, 3.25f32, true, 'x'));
    }

    #[test]
    fn bincode_round_trips() {
        round_trip_all::<Bincode>();
    }

    #[test]
    fn json_round_trips() {
        round_trip_all::<Json>();
        // And the payload is plain JSON.
        let bytes = encode_value::<Json, _>(&account(), WriterId::UNKNOWN, &[]).unwrap();
        let payload = std::str::from_utf8(bytes.get(HEADER_LEN..).unwrap()).unwrap();
        assert_eq!(
            payload,
            r#"{"owner":"ada ✓","balance":-42,"tags":["a",""],"limit":7}"#
        );
    }

    #[test]
    fn unsized_values_encode() {
        let bytes = encode_value::<Json, str>("hello", WriterId(1), &[]).unwrap();
        assert_eq!(decode_value::<Json, String>(&bytes).unwrap().0, "hello");
        let bytes = encode_value::<Bincode, [u16]>(&[1, 2, 3], WriterId(1), &[]).unwrap();
        assert_eq!(decode_value::<Bincode, Vec<u16>>(&bytes).unwrap().0, [1, 2, 3]);
    }

    #[test]
    fn codec_names() {
        assert_eq!(codec_name(1), "bincode");
        assert_eq!(codec_name(2), "json");
        assert_eq!(codec_name(0), "unknown codec #0");
        assert_eq!(codec_name(7), "unknown codec #7");
        assert_eq!(codec_name(255), "unknown codec #255");
    }

    #[test]
    fn header_layout() {
        let history = [
            HistoryEntry {
                writer: WriterId(0x0102),
                version: 0x0a0b0c0d,
            },
            HistoryEntry {
                writer: WriterId(u128::MAX),
                version: -1,
            },
        ];
        let bytes = encode_value::<Json, _>(&1u8, WriterId(0x1122_3344), &history).unwrap();
        let mut expected = b"MZKA".to_vec();
        expected.extend_from_slice(&[1, 2, 0, 2]);
        expected.extend_from_slice(&0x1122_3344u128.to_le_bytes());
        expected.extend_from_slice(&0x0102u128.to_le_bytes());
        expected.extend_from_slice(&[0x0d, 0x0c, 0x0b, 0x0a]);
        expected.extend_from_slice(&[0xff; 20]);
        expected.push(b'1');
        assert_eq!(bytes, expected);
    }

    #[test]
    fn history_round_trips() {
        for len in [0, 1, 2, MAX_HISTORY - 1, MAX_HISTORY] {
            let history: Vec<HistoryEntry> = (0..len)
                .map(|i| HistoryEntry {
                    writer: WriterId(u128::MAX - i as u128),
                    version: i32::MAX - i as i32,
                })
                .collect();
            let bytes = encode_value::<Bincode, _>(&"v", WriterId(3), &history).unwrap();
            assert_eq!(bytes.len(), HEADER_LEN + len * HISTORY_ENTRY_LEN + 2);
            let (value, meta) = decode_value::<Bincode, String>(&bytes).unwrap();
            assert_eq!(value, "v");
            assert_eq!(meta.history, history);
            assert_eq!(meta.writer, WriterId(3));
        }
    }

    #[test]
    fn history_is_capped() {
        let history: Vec<HistoryEntry> = (0..40)
            .map(|i| HistoryEntry {
                writer: WriterId(i),
                version: i as i32,
            })
            .collect();
        let bytes = encode_value::<Bincode, _>(&5u8, WriterId(1), &history).unwrap();
        let (_, meta) = decode_value::<Bincode, u8>(&bytes).unwrap();
        assert_eq!(meta.history, history[..MAX_HISTORY]);

        let envelope = Envelope {
            codec_id: 1,
            chunked: false,
            writer: WriterId(1),
            history,
            payload: &[5],
        };
        assert_eq!(
            envelope.encoded_len(),
            HEADER_LEN + MAX_HISTORY * HISTORY_ENTRY_LEN + 1
        );
        assert_eq!(envelope.to_vec(), bytes);
    }

    #[test]
    fn envelope_round_trips() {
        for chunked in [false, true] {
            for codec_id in [0, 1, 2, 200] {
                let envelope = Envelope {
                    codec_id,
                    chunked,
                    writer: WriterId(u128::MAX),
                    history: vec![HistoryEntry {
                        writer: WriterId(0),
                        version: i32::MIN,
                    }],
                    payload: b"anything at all",
                };
                let mut out = b"prefix".to_vec();
                envelope.write(&mut out);
                let bytes = out.get(6..).unwrap();
                assert_eq!(bytes.len(), envelope.encoded_len());
                assert_eq!(Envelope::parse(bytes).unwrap(), envelope);
            }
        }
        // An empty payload is a valid envelope (decoding it may still fail).
        let envelope = Envelope {
            codec_id: 1,
            chunked: false,
            writer: WriterId(1),
            history: vec![],
            payload: &[],
        };
        let bytes = envelope.to_vec();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(Envelope::parse(&bytes).unwrap(), envelope);
        assert!(matches!(
            decode_value::<Bincode, u8>(&bytes),
            Err(CodecError::Payload { .. })
        ));
        assert!(decode_value::<Bincode, ()>(&bytes).is_ok());
    }

    fn valid() -> Vec<u8> {
        let history = [
            HistoryEntry {
                writer: WriterId(1),
                version: 1,
            },
            HistoryEntry {
                writer: WriterId(2),
                version: 2,
            },
        ];
        encode_value::<Bincode, _>(&account(), WriterId(3), &history).unwrap()
    }

    #[test]
    fn not_mazurka() {
        for bytes in [
            &b""[..],
            b"h",
            b"MX",
            b"MZK\x00",
            b"hello",
            b"mzka\x01\x01\x00\x00",
            b"MZKB",
            b"ZKMA",
            br#"{"owner":"ada","balance":1}"#,
            b"[1,2,3]",
            b"\x00\x00\x00\x00",
            &[0xff; 64],
        ] {
            assert_eq!(Envelope::parse(bytes), Err(CodecError::NotMazurka), "{bytes:?}");
            assert_eq!(
                decode_value::<Bincode, Account>(bytes).unwrap_err(),
                CodecError::NotMazurka
            );
            assert_eq!(
                decode_value::<Json, Account>(bytes).unwrap_err(),
                CodecError::NotMazurka
            );
        }
        let json = serde_json::to_vec(&account()).unwrap();
        assert_eq!(
            decode_value::<Json, Account>(&json).unwrap_err(),
            CodecError::NotMazurka
        );
        let raw = Bincode::encode(&account()).unwrap();
        assert_eq!(
            decode_value::<Bincode, Account>(&raw).unwrap_err(),
            CodecError::NotMazurka
        );
    }

    #[test]
    fn truncated_header() {
        let bytes = valid();
        assert_eq!(Envelope::parse(&[]), Err(CodecError::NotMazurka));
        for len in 1..HEADER_LEN {
            let cut = bytes.get(..len).unwrap();
            let expected = CodecError::Truncated {
                needed: HEADER_LEN,
                found: len,
            };
            assert_eq!(Envelope::parse(cut), Err(expected.clone()), "length {len}");
            assert_eq!(
                decode_value::<Bincode, Account>(cut),
                Err(expected.clone()),
                "length {len}"
            );
            assert_eq!(decode_value::<Json, Account>(cut), Err(expected), "length {len}");
        }
        let magic_only = b"MZKA";
        assert_eq!(
            Envelope::parse(magic_only),
            Err(CodecError::Truncated {
                needed: HEADER_LEN,
                found: 4
            })
        );
    }

    #[test]
    fn truncated_history() {
        let bytes = valid();
        let full = HEADER_LEN + 2 * HISTORY_ENTRY_LEN;
        for len in HEADER_LEN..full {
            let cut = bytes.get(..len).unwrap();
            assert_eq!(
                Envelope::parse(cut),
                Err(CodecError::Truncated {
                    needed: full,
                    found: len
                }),
                "length {len}"
            );
        }
        // Just the history, no payload: a valid envelope whose payload does not decode.
        let cut = bytes.get(..full).unwrap();
        assert_eq!(Envelope::parse(cut).unwrap().payload, &[] as &[u8]);
        assert!(matches!(
            decode_value::<Bincode, Account>(cut),
            Err(CodecError::Payload { .. })
        ));
        // A cut payload.
        let cut = bytes.get(..bytes.len() - 1).unwrap();
        assert!(matches!(
            decode_value::<Bincode, Account>(cut),
            Err(CodecError::Payload { .. })
        ));
        // A full history announced with no bytes for it.
        let mut header = valid().get(..HEADER_LEN).unwrap().to_vec();
        header[7] = MAX_HISTORY as u8;
        let needed = HEADER_LEN + MAX_HISTORY * HISTORY_ENTRY_LEN;
        assert_eq!(
            Envelope::parse(&header),
            Err(CodecError::Truncated {
                needed,
                found: HEADER_LEN
            })
        );
    }

    #[test]
    fn bad_version() {
        for version in [0, 2, 3, 0x7f, 0xff] {
            let mut bytes = valid();
            bytes[4] = version;
            assert_eq!(
                decode_value::<Bincode, Account>(&bytes),
                Err(CodecError::UnsupportedFormat(version))
            );
            // Even without the rest of the header: a newer format may have a different layout.
            assert_eq!(
                Envelope::parse(bytes.get(..5).unwrap()),
                Err(CodecError::UnsupportedFormat(version))
            );
        }
    }

    #[test]
    fn unknown_flags() {
        for flags in [0b10, 0b11, 0x80, 0xff] {
            let mut bytes = valid();
            bytes[6] = flags;
            assert_eq!(Envelope::parse(&bytes), Err(CodecError::UnknownFlags(flags)));
            assert_eq!(
                decode_value::<Bincode, Account>(&bytes),
                Err(CodecError::UnknownFlags(flags))
            );
        }
    }

    #[test]
    fn history_too_long() {
        for len in [MAX_HISTORY as u8 + 1, 100, 255] {
            let mut bytes = valid();
            bytes[7] = len;
            bytes.resize(HEADER_LEN + 255 * HISTORY_ENTRY_LEN, 0);
            assert_eq!(Envelope::parse(&bytes), Err(CodecError::HistoryTooLong(len)));
        }
    }

    #[test]
    fn chunked() {
        let mut bytes = valid();
        bytes[6] = FLAG_CHUNKED;
        assert_eq!(decode_value::<Bincode, Account>(&bytes), Err(CodecError::Chunked));
        // The wrong codec is reported before the chunk flag.
        assert!(matches!(
            decode_value::<Json, Account>(&bytes),
            Err(CodecError::WrongCodec { .. })
        ));
        let envelope = Envelope::parse(&bytes).unwrap();
        assert!(envelope.chunked);
        assert_eq!(envelope.meta().writer, WriterId(3));
        assert_eq!(Bincode::decode::<Account>(envelope.payload).unwrap(), account());
    }

    #[test]
    fn wrong_codec() {
        let bincode = encode_value::<Bincode, _>(&account(), WriterId(1), &[]).unwrap();
        let json = encode_value::<Json, _>(&account(), WriterId(1), &[]).unwrap();
        assert_eq!(
            decode_value::<Json, Account>(&bincode),
            Err(CodecError::WrongCodec {
                expected: "json",
                found: "bincode".to_owned()
            })
        );
        assert_eq!(
            decode_value::<Bincode, Account>(&json),
            Err(CodecError::WrongCodec {
                expected: "bincode",
                found: "json".to_owned()
            })
        );
        let mut unknown = json.clone();
        unknown[5] = 7;
        assert_eq!(
            decode_value::<Json, Account>(&unknown),
            Err(CodecError::WrongCodec {
                expected: "json",
                found: "unknown codec #7".to_owned()
            })
        );
        let message = decode_value::<Json, Account>(&bincode).unwrap_err().to_string();
        assert!(
            message.contains("bincode") && message.contains("json"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type() {
        let bytes = encode_value::<Bincode, _>(&account(), WriterId(1), &[]).unwrap();
        match decode_value::<Bincode, Shape>(&bytes) {
            Err(CodecError::Payload { type_name, .. }) => {
                assert!(type_name.ends_with("Shape"), "{type_name}")
            }
            other => panic!("{other:?}"),
        }
        // Fewer fields than written: the rest are trailing bytes.
        match decode_value::<Bincode, (String, i64)>(&bytes) {
            Err(CodecError::Payload { reason, .. }) => {
                assert!(reason.contains("unexpected bytes"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_value::<Bincode, u8>(&bytes),
            Err(CodecError::Payload { .. })
        ));

        let bytes = encode_value::<Json, _>(&account(), WriterId(1), &[]).unwrap();
        match decode_value::<Json, Vec<u8>>(&bytes) {
            Err(CodecError::Payload { type_name, .. }) => assert_eq!(type_name, "alloc::vec::Vec<u8>"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_value::<Json, Shape>(&bytes),
            Err(CodecError::Payload { .. })
        ));
        assert!(matches!(
            Json::decode::<u8>(b"1 2"),
            Err(CodecError::Payload { .. })
        ));
        assert!(matches!(
            Json::decode::<u8>(b"256"),
            Err(CodecError::Payload { .. })
        ));
        assert_eq!(Json::decode::<u8>(b" 1\n").unwrap(), 1);
    }

    #[test]
    fn hostile_lengths_are_refused() {
        // varint 253 = u64 follows; claim absurd string and byte lengths.
        for len in [u64::MAX, 1 << 40, 1 << 30, (64 << 20) + 1] {
            let mut payload = vec![253];
            payload.extend_from_slice(&len.to_le_bytes());
            payload.extend_from_slice(b"short");
            assert!(
                matches!(
                    Bincode::decode::<String>(&payload),
                    Err(CodecError::Payload { .. })
                ),
                "{len}"
            );
            assert!(
                matches!(
                    Bincode::decode::<Vec<u8>>(&payload),
                    Err(CodecError::Payload { .. })
                ),
                "{len}"
            );
            assert!(
                matches!(
                    Bincode::decode::<Vec<String>>(&payload),
                    Err(CodecError::Payload { .. })
                ),
                "{len}"
            );
            assert!(
                matches!(
                    Bincode::decode::<Vec<u64>>(&payload),
                    Err(CodecError::Payload { .. })
                ),
                "{len}"
            );
            assert!(matches!(
                Bincode::decode::<BTreeMap<u8, u8>>(&payload),
                Err(CodecError::Payload { .. })
            ));
        }
        // Zero-sized elements take no bytes: only the element budget stops 2^63 of them.
        let mut units = vec![253];
        units.extend_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(matches!(
            Bincode::decode::<Vec<()>>(&units),
            Err(CodecError::Payload { .. })
        ));
        assert!(matches!(
            Bincode::decode::<Vec<Vec<()>>>(&[2, 253, 0, 0, 0, 0, 0, 0, 0, 128, 0]),
            Err(CodecError::Payload { .. })
        ));
        let honest = vec![(); 1 << 20];
        assert_eq!(
            Bincode::decode::<Vec<()>>(&Bincode::encode(&honest).unwrap()).unwrap(),
            honest
        );
        // Trailing bytes after a complete value.
        assert!(matches!(
            Bincode::decode::<u8>(&[1, 2]),
            Err(CodecError::Payload { .. })
        ));
    }

    #[test]
    fn large_values_decode() {
        // Well above the smallest limit's share: a 5 MiB string still decodes.
        let big = "x".repeat(5 << 20);
        let bytes = Bincode::encode(&big).unwrap();
        assert_eq!(Bincode::decode::<String>(&bytes).unwrap(), big);
        let bytes = encode_value::<Bincode, _>(&big, WriterId(1), &[]).unwrap();
        assert_eq!(decode_value::<Bincode, String>(&bytes).unwrap().0, big);
    }

    struct Unsized;

    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let seq = serializer.serialize_seq(None)?;
            seq.end()
        }
    }

    #[test]
    fn encode_errors() {
        match Bincode::encode(&Unsized) {
            Err(CodecError::Encode { type_name, .. }) => {
                assert!(type_name.ends_with("Unsized"), "{type_name}")
            }
            other => panic!("{other:?}"),
        }
        let mut out = b"keep".to_vec();
        assert!(Bincode::encode_into(&Unsized, &mut out).is_err());
        assert_eq!(out, b"keep");
        assert!(matches!(
            encode_value::<Bincode, _>(&Unsized, WriterId(1), &[]),
            Err(CodecError::Encode { .. })
        ));

        let mut map = BTreeMap::new();
        map.insert((1, 2), 3);
        assert!(matches!(Json::encode(&map), Err(CodecError::Encode { .. })));
        let mut out = b"keep".to_vec();
        assert!(Json::encode_into(&map, &mut out).is_err());
        assert_eq!(out, b"keep");
        assert!(matches!(
            encode_value::<Json, _>(&map, WriterId(1), &[]),
            Err(CodecError::Encode { .. })
        ));
        // Bincode has no such restriction.
        round_trip::<Bincode, _>(&map);
    }

    #[test]
    fn writer_ids() {
        assert_eq!(WriterId::default(), WriterId::UNKNOWN);
        assert!(WriterId::UNKNOWN.is_unknown());
        assert_eq!(WriterId(0xab).to_string(), format!("{}ab", "0".repeat(30)));
        assert_eq!(WriterId(u128::MAX).to_string(), "f".repeat(32));
        assert_eq!(
            format!("{:?}", WriterId(1)),
            format!("WriterId({}1)", "0".repeat(31))
        );
        let ids: std::collections::HashSet<WriterId> = (0..1000).map(|_| WriterId::random()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&WriterId::UNKNOWN));
    }

    type Value = (u64, String, Vec<i32>, Option<bool>);

    fn with_valid_header() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just(Bincode::ID), Just(Json::ID), any::<u8>()],
            any::<bool>(),
            0..=MAX_HISTORY,
            any::<u128>(),
            proptest::collection::vec(any::<u8>(), 0..400),
        )
            .prop_map(|(codec_id, chunked, history_len, writer, rest)| {
                let mut out = Vec::new();
                let history = vec![
                    HistoryEntry {
                        writer: WriterId(1),
                        version: 1
                    };
                    history_len
                ];
                write_header(&mut out, codec_id, chunked, WriterId(writer), &history);
                // Keep the header, and let the history and payload be arbitrary bytes.
                out.truncate(HEADER_LEN);
                out.extend_from_slice(&rest);
                out
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::parse(&bytes);
            let _ = decode_value::<Bincode, Account>(&bytes);
            let _ = decode_value::<Json, Account>(&bytes);
            let _ = Bincode::decode::<Nested>(&bytes);
            let _ = Json::decode::<Nested>(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = Envelope::parse(&bytes);
            let _ = decode_value::<Bincode, Value>(&bytes);
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in with_valid_header()) {
            let parsed = Envelope::parse(&bytes);
            if let Ok(envelope) = &parsed {
                prop_assert_eq!(envelope.to_vec(), bytes.clone());
            }
            let _ = decode_value::<Bincode, Account>(&bytes);
            let _ = decode_value::<Bincode, Nested>(&bytes);
            let _ = decode_value::<Bincode, Value>(&bytes);
            let _ = decode_value::<Json, Account>(&bytes);
            let _ = decode_value::<Json, Nested>(&bytes);
            let _ = decode_value::<Json, serde_json::Value>(&bytes);
        }

        #[test]
        fn encode_decode_is_identity(
            value in any::<Value>(),
            writer in any::<u128>(),
            history in proptest::collection::vec((any::<u128>(), any::<i32>()), 0..=MAX_HISTORY),
        ) {
            let history: Vec<HistoryEntry> = history
                .into_iter()
                .map(|(w, version)| HistoryEntry { writer: WriterId(w), version })
                .collect();
            let expected = EnvelopeMeta {
                codec_id: Bincode::ID,
                writer: WriterId(writer),
                history: history.clone(),
            };

            let bytes = encode_value::<Bincode, _>(&value, WriterId(writer), &history)?;
            let (decoded, meta) = decode_value::<Bincode, Value>(&bytes)?;
            prop_assert_eq!(&decoded, &value);
            prop_assert_eq!(&meta, &expected);

            let bytes = encode_value::<Json, _>(&value, WriterId(writer), &history)?;
            let (decoded, meta) = decode_value::<Json, Value>(&bytes)?;
            prop_assert_eq!(&decoded, &value);
            prop_assert_eq!(meta, EnvelopeMeta { codec_id: Json::ID, ..expected });
        }
    }
}
