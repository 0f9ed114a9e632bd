//! ZooKeeper's sequence numbers, and where they stop telling the order of arrival.
//!
//! The suffix the server appends to a sequential node's name is its parent's `cversion` — a
//! signed 32-bit counter of the creates of its children (deletes leave it alone) — printed by
//! Java's `%010d`, which pads a negative number after its sign: `0000000007`, `2147483647`,
//! `-2147483648`, `-000000005`. Up to 2^31 − 1 the numbers are issued in the order the server
//! (its leader) takes the creates, which is also the order of their creation zxids.
//!
//! What a ZooKeeper 3.8 server does at the end of the counter (its sources, and a real server on a
//! snapshot whose directory's `cversion` was put at 2^31 − 2, agree): the request processor
//! numbers a create from the counter as the creates still in its pipeline left it, and that
//! value wraps (`2147483647 + 1` is `-2147483648`); the stored counter is only ever raised
//! (`DataTree` keeps the larger value), so it stays at `2147483647`. Once a directory got there —
//! 2^31 creates while it was never empty long enough to be reaped, about a week of a hot lock —
//! every later contender gets `2147483647` again, or `-2147483648`, `-2147483647`, … when its
//! create overlaps others in the pipeline. Equal numbers then, and a later contender may even get
//! `2147483647` after an earlier one got `-2147483648`: no order of the numbers is the order of
//! arrival. Such a directory is *exhausted*; [`exhausted`] says which numbers only occur there,
//! and the queue is then ordered by creation zxid instead (see [`super::order`]).
//!
//! Numbers that are not exhausted (`0..2147483647`) were all issued before any exhausted one, in
//! arrival order, so the two orders agree wherever both apply.

/// The sequence number of a suffix exactly as ZooKeeper prints it (`%010d` of an `i32`), or
/// `None` for anything else: a shorter or longer form, a sign other than a leading `-`, or a value
/// out of range. Strict, so that every contender ignores the same junk names.
pub(crate) fn parse(suffix: &str) -> Option<i32> {
    let digits = suffix.strip_prefix('-').unwrap_or(suffix);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let negative = digits.len() != suffix.len();
    // `%010d` is ten characters wide, sign included; only −10^9 and below need an eleventh.
    let canonical = match (negative, digits.len()) {
        (false, 10) | (true, 9) => true,
        (true, 10) => !digits.starts_with('0'),
        _ => false,
    };
    if !canonical {
        return None;
    }
    // Range checked here (a ten-digit value above `i32::MAX` is no ZooKeeper suffix); `-0…0` is
    // not what `%010d` prints for zero.
    let value: i32 = suffix.parse().ok()?;
    (value != 0 || !negative).then_some(value)
}

/// Whether `seq` is a number only an exhausted directory hands out (see the [module docs](self)):
/// the counter's last value `2147483647`, or a negative one (the counter wrapped in the server's
/// pipeline). A listing with such a number cannot be ordered by its numbers.
pub(crate) fn exhausted(seq: i32) -> bool {
    seq == i32::MAX || seq < 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What ZooKeeper's `String.format("%010d", v)` prints (Rust's `{:010}` pads after the sign
    /// the same way).
    fn zk(v: i32) -> String {
        format!("{v:010}")
    }

    #[test]
    fn reads_every_form_zookeeper_prints() {
        for v in [
            0,
            1,
            7,
            999_999_999,
            1_000_000_000,
            i32::MAX,
            -1,
            -5,
            -999_999_999,
            -1_000_000_000,
            -2_147_483_000,
            i32::MIN,
        ] {
            assert_eq!(parse(&zk(v)), Some(v), "{}", zk(v));
        }
        assert_eq!(zk(-5), "-000000005");
        assert_eq!(zk(i32::MIN), "-2147483648");
    }

    #[test]
    fn refuses_what_zookeeper_never_prints() {
        for bad in [
            "",
            "-",
            "1",
            "000000001",
            "00000000001",
            "+000000001",
            "-0000000001",
            "-00000001",
            "-000000000",
            "2147483648",
            "9999999999",
            "-2147483649",
            "--000000001",
            "00000000a1",
            "0000000000000000001",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_end_of_the_counter_is_exhausted() {
        for v in [i32::MAX, i32::MIN, -2_147_483_647, -5, -1] {
            assert!(exhausted(v), "{}", zk(v));
        }
        for v in [0, 1, 999_999_999, i32::MAX - 1] {
            assert!(!exhausted(v), "{}", zk(v));
        }
    }

    proptest! {
        #[test]
        fn parse_reads_back_exactly_what_zookeeper_prints(v in any::<i32>()) {
            prop_assert_eq!(parse(&zk(v)), Some(v));
        }

        #[test]
        fn parse_never_accepts_a_second_spelling(s in "[-+0-9]{0,12}") {
            if let Some(v) = parse(&s) {
                prop_assert_eq!(zk(v), s);
            }
        }
    }
}
