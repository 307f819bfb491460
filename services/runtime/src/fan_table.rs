//! A table keyed by fan whose entry can be prefetched from the fan id alone, for the
//! per-fan state looked up once per event: the fan profiles (400k in the generator's world,
//! every partition's fans) and each partition's open fan states.
//!
//! Why not `hashbrown`: a lookup of a random fan among hundreds of thousands is a cache
//! miss, and the pipeline can only hide it if it can start it early — a few records ahead,
//! from the record key (`decode::Decoder::look_ahead`). `hashbrown` has no way to prefetch
//! an entry; here a fan's first candidate slot follows from its id alone (ids are keyed
//! HMACs, so uniform), so [`FanTable::prefetch`] loads exactly what [`FanTable::get`] will
//! read. Slots are either a whole cache line ([`Line`], values up to 56 bytes, as a fan
//! profile is: one line per lookup) or packed ([`Packed`], as a 32-byte fan state: the
//! memory of a `hashbrown` map, at most two lines per lookup, both prefetched).

use crate::pii::FanId;

/// Slot layout: one fan per 64-byte cache line, so a lookup reads one line.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct Line;

/// Slot layout: fans packed at their own size (a `hashbrown` map's memory); a lookup reads
/// at most two lines.
#[derive(Default)]
pub(crate) struct Packed;

/// A fan and its value; `A`, a zero-length array, only sets the alignment. Fan id 0 marks a
/// free slot (fan 0 is held aside).
#[derive(Default)]
#[repr(C)]
struct Slot<V, A> {
    _layout: [A; 0],
    fan: FanId,
    value: V,
}

/// Open addressing with linear probing and backward-shift deletion (no tombstones, so
/// probe lengths do not grow with churn); grows at 13/16 full.
pub(crate) struct FanTable<V, A = Line> {
    slots: Vec<Slot<V, A>>,
    /// `64 - log2(slots.len())`: a fan's home slot is the top bits of a Fibonacci hash.
    shift: u32,
    len: usize,
    /// The value of fan id 0, which the free-slot marker cannot hold.
    zero: Option<V>,
}

impl<V, A> Default for FanTable<V, A> {
    fn default() -> Self {
        FanTable {
            slots: Vec::new(),
            shift: 0,
            len: 0,
            zero: None,
        }
    }
}

impl<V: Default, A: Default> std::fmt::Debug for FanTable<V, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanTable")
            .field("len", &self.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<V: Default, A: Default> FanTable<V, A> {
    /// Fans held.
    pub(crate) fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    /// Fans it holds before it grows.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len() * 13 / 16
    }

    #[inline]
    fn home(&self, fan: FanId) -> usize {
        (fan.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Starts loading `fan`'s home slot, so [`FanTable::get`] a few records later finds it
    /// in cache (a fan probed past its home still pays one more line, rarely).
    #[inline]
    pub(crate) fn prefetch(&self, fan: FanId) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Slot<V, A> = &self.slots[self.home(fan)];
        crate::prefetch::line(slot);
        if std::mem::align_of::<Slot<V, A>>() < 64 {
            // A packed slot may end on the next line.
            let last = slot
                .cast::<u8>()
                .wrapping_add(std::mem::size_of::<Slot<V, A>>() - 1);
            crate::prefetch::line(last);
        }
    }

    /// The slot holding `fan`, if any (fan ≠ 0).
    #[inline]
    fn find(&self, fan: FanId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(fan);
        loop {
            match self.slots[i].fan {
                f if f == fan => return Some(i),
                0 => return None,
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    /// The first free slot from `fan`'s home: where a fan not held goes (the table has one).
    fn vacant(&self, fan: FanId) -> usize {
        let mut i = self.home(fan);
        while self.slots[i].fan != 0 {
            i = (i + 1) & self.mask();
        }
        i
    }

    /// `fan`'s value.
    #[inline]
    pub(crate) fn get(&self, fan: FanId) -> Option<&V> {
        if fan == 0 {
            return self.zero.as_ref();
        }
        self.find(fan).map(|i| &self.slots[i].value)
    }

    /// `fan`'s value, to change it.
    #[inline]
    pub(crate) fn get_mut(&mut self, fan: FanId) -> Option<&mut V> {
        if fan == 0 {
            return self.zero.as_mut();
        }
        self.find(fan).map(|i| &mut self.slots[i].value)
    }

    /// `fan`'s value, a default one inserted if it had none.
    pub(crate) fn get_or_default(&mut self, fan: FanId) -> &mut V {
        if fan == 0 {
            return self.zero.get_or_insert_with(V::default);
        }
        if let Some(i) = self.find(fan) {
            return &mut self.slots[i].value;
        }
        if (self.len + 1) * 16 > self.slots.len() * 13 {
            self.resize((self.slots.len() * 2).max(16));
        }
        let i = self.vacant(fan);
        self.len += 1;
        self.slots[i].fan = fan;
        &mut self.slots[i].value
    }

    /// Sets `fan`'s value.
    pub(crate) fn insert(&mut self, fan: FanId, value: V) {
        *self.get_or_default(fan) = value;
    }

    /// Removes `fan`.
    pub(crate) fn remove(&mut self, fan: FanId) -> Option<V> {
        if fan == 0 {
            return self.zero.take();
        }
        let i = self.find(fan)?;
        Some(self.remove_at(i))
    }

    /// Empties slot `hole`, shifting back the fans probed past it so every fan stays
    /// reachable from its home without tombstones; only fans of the same probe run after
    /// `hole` move.
    fn remove_at(&mut self, mut hole: usize) -> V {
        let removed = std::mem::take(&mut self.slots[hole]);
        self.len -= 1;
        let mask = self.mask();
        let mut next = (hole + 1) & mask;
        while self.slots[next].fan != 0 {
            let home = self.home(self.slots[next].fan);
            // The fan at `next` may fill the hole unless its home lies cyclically in
            // (hole, next]: moving it before its home would lose it.
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.slots.swap(hole, next);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        removed.value
    }

    /// Removes, in place, every fan `take` says yes to (it may change the value first), and
    /// hands each to `taken`. Each fan is asked once.
    pub(crate) fn extract_if(
        &mut self,
        mut take: impl FnMut(FanId, &mut V) -> bool,
        mut taken: impl FnMut(FanId, V),
    ) {
        if let Some(value) = self.zero.as_mut() {
            if take(0, value) {
                if let Some(value) = self.zero.take() {
                    taken(0, value);
                }
            }
        }
        // Scanning from a free slot, no probe run wraps past the scan's start, so a
        // removal only moves fans not yet asked, one of them into the slot just emptied.
        let Some(start) = self.slots.iter().position(|s| s.fan == 0) else {
            return;
        };
        let mask = self.mask();
        let mut step = 0;
        while step < self.slots.len() {
            let i = (start + step) & mask;
            let fan = self.slots[i].fan;
            if fan != 0 && take(fan, &mut self.slots[i].value) {
                let value = self.remove_at(i);
                taken(fan, value);
                continue; // a later fan of the run may now sit in `i`
            }
            step += 1;
        }
    }

    /// Keeps only the fans `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(FanId, &mut V) -> bool) {
        self.extract_if(|fan, value| !keep(fan, value), |_, _| {});
    }

    /// Every fan held.
    pub(crate) fn fans(&self) -> impl Iterator<Item = FanId> + '_ {
        let zero = self.zero.as_ref().map(|_| 0);
        self.slots
            .iter()
            .filter(|s| s.fan != 0)
            .map(|s| s.fan)
            .chain(zero)
    }

    /// Every value held.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.slots
            .iter()
            .filter(|s| s.fan != 0)
            .map(|s| &s.value)
            .chain(self.zero.as_ref())
    }

    /// Gives memory back: the fewest slots that hold `min` fans (at least those held)
    /// without growing, if fewer than now.
    pub(crate) fn shrink_to(&mut self, min: usize) {
        let fans = min.max(self.len);
        if fans == 0 {
            self.slots = Vec::new();
            return;
        }
        let mut slots = 16usize;
        while fans * 16 > slots * 13 {
            slots *= 2;
        }
        if slots < self.slots.len() {
            self.resize(slots);
        }
    }

    /// Moves every fan into `capacity` (a power of two) new slots.
    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(Slot::default)
                .take(capacity)
                .collect(),
        );
        self.shift = 64 - capacity.trailing_zeros();
        for slot in old.into_iter().filter(|s| s.fan != 0) {
            let i = self.vacant(slot.fan);
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that fills most of the slot's line, as a fan profile does.
    #[derive(Default, Debug, PartialEq)]
    struct Profile {
        step: u64,
        rest: [u64; 6],
    }

    fn profile(step: u64) -> Profile {
        Profile {
            step,
            rest: [step; 6],
        }
    }

    #[test]
    fn slots_are_a_line_or_packed() {
        assert_eq!(std::mem::size_of::<Slot<Profile, Line>>(), 64);
        assert_eq!(std::mem::align_of::<Slot<Profile, Line>>(), 64);
        assert_eq!(std::mem::size_of::<Slot<[u64; 4], Packed>>(), 40);
    }

    /// Random inserts, updates, removals, in-place extractions and shrinks of a small key
    /// space (so fans come back, fan 0 among them) with clustered ids (so probe runs pass
    /// other fans' homes and wrap around the end), against a `HashMap`.
    fn holds_what_a_hash_map_holds<A: Default>() {
        let mut table = FanTable::<Profile, A>::default();
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fan = match x % 4 {
                0 => x % 3_000,
                _ => (x >> 8) % 20_000 * 0x1_0000_0000,
            };
            match x >> 58 {
                0..=35 => {
                    table.insert(fan, profile(step));
                    model.insert(fan, step);
                }
                36..=59 => {
                    assert_eq!(table.remove(fan).is_some(), model.remove(&fan).is_some());
                }
                60 if x & 0xF == 0 => {
                    // Take a third of the fans, changing the ones kept.
                    let mut asked = std::collections::HashSet::new();
                    let mut taken = Vec::new();
                    table.extract_if(
                        |f, p| {
                            assert!(asked.insert(f), "fan {f} asked twice");
                            p.rest[0] += 1;
                            f % 3 == step % 3
                        },
                        |f, p| taken.push((f, p.step)),
                    );
                    assert_eq!(asked.len(), model.len());
                    for &(f, s) in &taken {
                        assert_eq!(model.remove(&f), Some(s));
                    }
                    for (&f, s) in &mut model {
                        assert!(f % 3 != step % 3);
                        let p = table.get_mut(f).expect("kept fan");
                        assert_eq!(p.rest[0], *s + 1);
                        p.rest[0] = *s;
                    }
                }
                61 if x & 0xF == 0 => table.shrink_to(model.len() * 2),
                _ => {
                    let held = table.get(fan);
                    let expected = model.get(&fan).map(|&s| profile(s));
                    assert_eq!(held, expected.as_ref(), "fan {fan} at step {step}");
                }
            }
            assert_eq!(table.len(), model.len());
            assert!(table.capacity() >= table.len() - usize::from(model.contains_key(&0)));
        }
        for (&fan, &step) in &model {
            assert_eq!(table.get(fan), Some(&profile(step)));
        }
        let mut fans: Vec<FanId> = table.fans().collect();
        let mut expected: Vec<FanId> = model.keys().copied().collect();
        fans.sort_unstable();
        expected.sort_unstable();
        assert_eq!(fans, expected);
        let mut steps: Vec<u64> = table.values().map(|p| p.step).collect();
        let mut expected: Vec<u64> = model.values().copied().collect();
        steps.sort_unstable();
        expected.sort_unstable();
        assert_eq!(steps, expected);
        table.retain(|_, _| false);
        assert_eq!((table.len(), table.fans().count()), (0, 0));
        table.shrink_to(0);
        assert_eq!(table.capacity(), 0);
    }

    #[test]
    fn a_line_table_holds_what_a_hash_map_holds() {
        holds_what_a_hash_map_holds::<Line>();
    }

    #[test]
    fn a_packed_table_holds_what_a_hash_map_holds() {
        holds_what_a_hash_map_holds::<Packed>();
    }
}
