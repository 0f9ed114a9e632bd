//! ZooKeeper's sequence numbers, and their order across the 32-bit wrap.
//!
//! The suffix the server appends to a sequential node's name is its parent's `cversion` — a
//! signed 32-bit counter that every create and delete of a child bumps — printed by Java's
//! `%010d`. After 2^31 − 1 it wraps to −2^31 and climbs through the negatives back to zero, and
//! `%010d` pads a negative number after its sign: `2147483647`, `-2147483648`, …, `-000000005`,
//! …, `0000000000`. A directory that is never empty long enough for the server to reap it (a hot
//! lock) gets there after about 10^9 lock cycles.
//!
//! What a ZooKeeper 3.8 server really does there (tried on one whose snapshot put a directory's
//! `cversion` at 2^31 − 2): the request processor hands out the wrapped, negative numbers only
//! while creates overlap in its pipeline; the stored counter only ever grows (`DataTree` keeps
//! the larger value), so it stays at `2147483647`, and contenders created one after another all
//! get that same suffix. This module orders negative numbers correctly; equal numbers are ordered
//! by name by the caller, which is not arrival order (see the README's non-guarantees).
//!
//! Numeric order breaks at the wrap: the first node after it would sort ahead of every older
//! one. Serial-number arithmetic (RFC 1982) on the 2^32 circle does not break, provided the
//! numbers compared are less than 2^31 apart. That is the one assumption made here, and
//! documented in the lock guarantees: **a live queue spans fewer than 2^31 sequence numbers**
//! (about 10^9 contenders arriving while its oldest node lives on).
//!
//! [`sort`] turns that into a total order for one listing (pairwise serial comparison is not
//! transitive once the assumption is broken, and a comparator that is not a total order may make
//! the standard sort panic): the values are placed on the circle, the circle is cut at the start
//! of its largest gap, and the queue is read from there. Under the assumption the largest gap is
//! the one outside the queue's arc, so that order is the serial order, the same for every
//! contender whatever subset of the queue it sees; beyond it the order is still total and
//! deterministic.

use std::cmp::Ordering;

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

/// RFC 1982 "less than" on `i32` sequence numbers: `a` was issued before `b`. Defined when they
/// are less than 2^31 apart; for exactly 2^31 apart, neither precedes the other. The order
/// [`sort`] must agree with (the tests check it does); not a total order, so never a comparator.
#[cfg(test)]
fn precedes(a: i32, b: i32) -> bool {
    // The distance from `a` forward to `b` on the circle, in (0, 2^31).
    b.wrapping_sub(a) > 0
}

/// Position on the 2^32 circle (the two's complement bits).
fn circle(seq: i32) -> u32 {
    seq as u32
}

/// Sorts `items` oldest first by the sequence number `seq` gives each, across the wrap (see the
/// [module docs](self)); items with the same number in `tie` order. O(n log n), no allocation.
pub(crate) fn sort<T>(items: &mut [T], seq: impl Fn(&T) -> i32, tie: impl Fn(&T, &T) -> Ordering) {
    // Around the circle from 0, a total order however the values lie.
    items.sort_unstable_by(|a, b| circle(seq(a)).cmp(&circle(seq(b))).then_with(|| tie(a, b)));
    let n = items.len();
    if n < 2 {
        return;
    }
    // The largest gap between neighbours on the circle, the wrap-around one (last to first)
    // included; its end is the oldest item. With a single distinct value the wrap-around gap is
    // the whole circle (2^32, hence u64).
    let gap = |from: usize, to: usize| -> u64 {
        match circle(seq(&items[to])).wrapping_sub(circle(seq(&items[from]))) {
            0 if from > to => 1 << 32,
            d => u64::from(d),
        }
    };
    let mut oldest = 0;
    let mut widest = gap(n - 1, 0);
    for i in 1..n {
        let g = gap(i - 1, i);
        if g > widest {
            (oldest, widest) = (i, g);
        }
    }
    items.rotate_left(oldest);
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
    fn the_wrap_is_one_step_forward() {
        assert!(precedes(i32::MAX, i32::MIN));
        assert!(!precedes(i32::MIN, i32::MAX));
        assert!(precedes(-1, 0));
        assert!(precedes(i32::MAX - 5, -2_147_483_000));
        assert!(!precedes(3, 3));
        let mut q = vec![-2_147_483_647, -2_147_483_000, i32::MAX, i32::MIN, i32::MAX - 1];
        sort(&mut q, |v| *v, |_, _| Ordering::Equal);
        assert_eq!(
            q,
            [i32::MAX - 1, i32::MAX, i32::MIN, -2_147_483_647, -2_147_483_000]
        );
        // The other sign change (-1 to 0) is no wrap, but a far negative one still comes first.
        let mut q = vec![3, -2, 0, -1_000_000_000];
        sort(&mut q, |v| *v, |_, _| Ordering::Equal);
        assert_eq!(q, [-1_000_000_000, -2, 0, 3]);
    }

    #[test]
    fn equal_numbers_keep_their_tie_order_also_across_the_cut() {
        let mut q = vec![(i32::MIN, 'b'), (i32::MAX, 'z'), (i32::MIN, 'a'), (i32::MAX, 'y')];
        sort(&mut q, |e| e.0, |a, b| a.1.cmp(&b.1));
        assert_eq!(
            q,
            [(i32::MAX, 'y'), (i32::MAX, 'z'), (i32::MIN, 'a'), (i32::MIN, 'b')]
        );
        let mut one = vec![(7, 'b'), (7, 'a')];
        sort(&mut one, |e| e.0, |a, b| a.1.cmp(&b.1));
        assert_eq!(one, [(7, 'a'), (7, 'b')]);
        let mut none: Vec<i32> = Vec::new();
        sort(&mut none, |v| *v, |_, _| Ordering::Equal);
        assert!(none.is_empty());
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

        /// A queue on any arc shorter than 2^31 — wrapped or not — comes out in issue order
        /// from any shuffle, and so does every subset of it (every contender sees the same order
        /// whatever it lists).
        #[test]
        fn an_arc_shorter_than_half_the_circle_sorts_in_issue_order(
            start in any::<i32>(),
            steps in prop::collection::vec(0u32..1 << 26, 1..40),
            span_cap in 1u32..=i32::MAX as u32,
            shuffle in any::<u64>(),
            keep in any::<u64>(),
        ) {
            // Issue order: `start` plus growing offsets, all within `span_cap` < 2^31.
            let mut offset = 0u32;
            let mut issued = Vec::new();
            for s in steps {
                offset = offset.saturating_add(s);
                if offset >= span_cap { break; }
                issued.push(start.wrapping_add(offset as i32));
            }
            let mut q = issued.clone();
            let mut state = shuffle | 1;
            for i in (1..q.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                q.swap(i, (state % (i as u64 + 1)) as usize);
            }
            sort(&mut q, |v| *v, |_, _| Ordering::Equal);
            prop_assert_eq!(&q, &issued);
            for w in q.windows(2) {
                prop_assert!(!precedes(w[1], w[0]));
            }
            let sub: Vec<i32> = issued.iter().enumerate()
                .filter(|(i, _)| keep >> (i % 64) & 1 == 1).map(|(_, v)| *v).collect();
            let mut shuffled_sub = sub.clone();
            shuffled_sub.reverse();
            sort(&mut shuffled_sub, |v| *v, |_, _| Ordering::Equal);
            prop_assert_eq!(shuffled_sub, sub);
        }

        /// Any values at all (the assumption broken): still a permutation, sorted by a rotation of
        /// the circle, and never a panic.
        #[test]
        fn any_values_give_a_rotation_of_the_circle_order(mut q in prop::collection::vec(any::<i32>(), 0..50)) {
            let mut by_circle = q.clone();
            by_circle.sort_by_key(|v| *v as u32);
            sort(&mut q, |v| *v, |_, _| Ordering::Equal);
            let mut back = q.clone();
            back.sort_by_key(|v| *v as u32);
            prop_assert_eq!(&back, &by_circle);
            let cut = q.iter().zip(q.iter().skip(1)).filter(|(a, b)| (**a as u32) > (**b as u32)).count();
            prop_assert!(cut <= 1, "one cut at most: {:?}", q);
        }
    }
}
