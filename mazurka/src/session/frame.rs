//! Sizes of ZooKeeper request frames, so that oversized writes are refused *before* sending.
//!
//! A frame larger than `jute.maxbuffer` (1,048,575 bytes by default) makes the server drop the
//! connection, failing every other in-flight request of the session too (DESIGN §9). These
//! functions mirror the jute encoding of each request: 4-byte lengths before strings and buffers,
//! 4-byte ints, an 8-byte request header (xid, opcode).

/// ZooKeeper's default `jute.maxbuffer`: the largest request frame a server accepts.
pub(crate) const FRAME_LIMIT: usize = 0xF_FFFF;

const REQUEST_HEADER: usize = 8;
const MULTI_HEADER: usize = 4 + 1 + 4;

fn string(len: usize) -> usize {
    4 + len
}

/// One ACL entry: perms, scheme, id.
pub(crate) fn acl_len(scheme: &str, id: &str) -> usize {
    4 + string(scheme.len()) + string(id.len())
}

/// Body of a create request (without request or multi header).
pub(crate) fn create_body(wire_path: usize, data: usize, acls: usize) -> usize {
    string(wire_path) + string(data) + 4 + acls + 4
}

/// Body of a setData request.
pub(crate) fn set_data_body(wire_path: usize, data: usize) -> usize {
    string(wire_path) + string(data) + 4
}

/// Body of a check or delete request.
pub(crate) fn path_version_body(wire_path: usize) -> usize {
    string(wire_path) + 4
}

/// A plain request frame around `body`.
pub(crate) fn single(body: usize) -> usize {
    REQUEST_HEADER + body
}

/// A multi request frame around the given op bodies.
pub(crate) fn multi(bodies: impl IntoIterator<Item = usize>) -> usize {
    REQUEST_HEADER + bodies.into_iter().map(|b| MULTI_HEADER + b).sum::<usize>() + MULTI_HEADER
}
