//! The order of a lock directory's queue: by sequence number while the numbers tell the order
//! of arrival, by creation zxid once the directory's counter is exhausted.
//!
//! In an exhausted directory (see [`super::sequence`]) contenders share the number `2147483647`,
//! and a later one may carry a number that reads as older than an earlier one's: ordered by
//! number, a newcomer can sort ahead of the holder — two holders. The creation zxid (`czxid`,
//! also the fencing token) is the order in which the server took the creates, which is the order
//! it issued the numbers in: where the numbers can be trusted the two orders agree, and the
//! zxids go on where the numbers stop. So a listing that holds an exhausted number is ordered by
//! zxid, fetched for every contender it names in one `multiRead` (in batches for very long
//! queues); any other listing by number, for nothing. Every contender computes the same order
//! from whatever it lists, since a node's zxid never changes: the monotony the recipe relies on
//! (nodes ahead only go) holds in both orders.
//!
//! One node is not placed by its own creation: the read-write lock's downgrade node, which takes
//! its write node's place (see `DistributedRwLock`'s `# Downgrade`). It carries that place both
//! ways: the write node's suffix in its name (the order by number) and the write node's zxid in
//! its data (`"place"`, written by [`sibling_data`], read by [`place_of`]: the order by zxid).
//! It is made while its write node holds the lock, so nothing older than that place is left in
//! the queue, and whatever comes later is placed behind it: at the head of the queue, it stays
//! there however long it outlives its write node, in both orders. A node whose data says nothing
//! of a place is placed by its own zxid.

use serde::{Deserialize, Serialize};

use super::holder::HolderInfo;
use super::recipe::Entry;
use super::sequence;
use crate::error::Result;
use crate::session::Session;

/// How many nodes one `multiRead` reads at most (small replies: a lock node's data is short).
const BATCH: usize = 512;

/// `entries` (parsed children of `dir`) in queue order, oldest first, entries with equal places
/// (a write node and its downgrade node) by name. In an exhausted directory, one `multiRead`
/// per [`BATCH`] entries fetches the zxids (a node gone meanwhile leaves the queue); otherwise no
/// request.
///
/// # Errors
/// The `multiRead`'s: a session or ZooKeeper error (retryable ones included: list again).
pub(crate) async fn arrange(session: &Session, dir: &str, mut entries: Vec<Entry>) -> Result<Vec<Entry>> {
    if entries.iter().any(|e| sequence::exhausted(e.seq)) {
        let places = places(session, dir, &entries).await?;
        entries = entries
            .into_iter()
            .zip(places)
            .filter_map(|(mut entry, place)| {
                entry.place = place?;
                Some(entry)
            })
            .collect();
    }
    sort(&mut entries);
    Ok(entries)
}

/// Orders entries by place, then name. O(n log n).
pub(crate) fn sort(entries: &mut [Entry]) {
    entries.sort_unstable_by(|a, b| a.place.cmp(&b.place).then_with(|| a.name.cmp(&b.name)));
}

/// The place by zxid of each of `entries`, `None` for a node that is gone.
async fn places(session: &Session, dir: &str, entries: &[Entry]) -> Result<Vec<Option<i64>>> {
    let paths: Vec<String> = entries.iter().map(|e| format!("{dir}/{}", e.name)).collect();
    let batches: Vec<Vec<&str>> = paths
        .chunks(BATCH)
        .map(|chunk| chunk.iter().map(String::as_str).collect())
        .collect();
    // Sent together: one round trip however many batches. Not one snapshot across batches, and
    // no need for one: a zxid never changes, and a node missing from a later batch has gone.
    let read = futures_util::future::join_all(batches.iter().map(|paths| session.multi_read(paths))).await;
    let mut places = Vec::with_capacity(entries.len());
    for batch in read {
        places.extend(
            batch?
                .into_iter()
                .map(|node| node.map(|(data, stat)| place_of(&data, stat.czxid))),
        );
    }
    Ok(places)
}

/// The `"place"` a downgrade node's data records, beside its holder's [`HolderInfo`].
#[derive(Deserialize)]
struct Place {
    place: Option<i64>,
}

/// A node's place by zxid: the one its data records (a downgrade node: its write node's, always
/// older than itself), else its own creation zxid.
pub(crate) fn place_of(data: &[u8], czxid: i64) -> i64 {
    match serde_json::from_slice::<Place>(data) {
        // Never later than the node itself: a place is only ever taken further ahead.
        Ok(Place { place: Some(place) }) if place > 0 => place.min(czxid),
        _ => czxid,
    }
}

/// The data of a downgrade node: its holder, and the place (creation zxid) of the write node it
/// stands beside. Still a [`HolderInfo`] to whoever reads it as one.
pub(crate) fn sibling_data(holder: &HolderInfo, place: i64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Sibling<'a> {
        #[serde(flatten)]
        holder: &'a HolderInfo,
        place: i64,
    }
    serde_json::to_vec(&Sibling { holder, place }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, seq: i32, place: i64) -> Entry {
        Entry {
            name: name.to_owned(),
            kind: "lock".to_owned(),
            seq,
            place,
        }
    }

    #[test]
    fn places_first_then_names() {
        let mut q = vec![
            entry("c", i32::MAX, 30),
            entry("b", i32::MIN, 20),
            entry("z", i32::MAX, 10),
            entry("a", i32::MAX, 30),
        ];
        sort(&mut q);
        let names: Vec<&str> = q.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["z", "b", "a", "c"]);
    }

    #[test]
    fn a_downgrade_node_is_placed_at_its_write_node() {
        let holder = HolderInfo::for_this_process(0x1234);
        let data = sibling_data(&holder, 40);
        assert_eq!(place_of(&data, 95), 40);
        // Still read as its holder's record.
        assert_eq!(HolderInfo::from_bytes(&data), Some(holder.clone()));
        // Anything else is placed by its own creation.
        assert_eq!(place_of(&holder.to_bytes(), 95), 95);
        assert_eq!(place_of(b"not json", 95), 95);
        assert_eq!(place_of(b"", 95), 95);
        assert_eq!(place_of(br#"{"place":-3}"#, 95), 95);
        // A place is never later than the node itself.
        assert_eq!(place_of(&sibling_data(&holder, 120), 95), 95);
    }
}
