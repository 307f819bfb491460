//! The fan-profile table: every profiled fan of the brand (400k in the generator's world),
//! looked up once per event.
//!
//! Why not a `hashbrown` map like the other dimensions: a lookup of a random fan among 400k
//! is a cache miss, and the pipeline can only hide it if it can start it early — a few
//! records ahead, from the record key (`decode::Decoder::look_ahead`). `hashbrown` has no
//! way to prefetch an entry; here a fan's first candidate slot follows from its id alone
//! (ids are keyed HMACs, so uniform) and holds the whole entry in one cache line, so
//! [`FanTable::prefetch`] loads exactly what [`FanTable::get`] will read. The same memory
//! as the map it replaces: 64 bytes per slot, at most 13/16 full.

use crate::pii::FanId;

/// One fan per cache line (a value up to 56 bytes, as a fan profile is); fan id 0 marks a
/// free slot (fan 0 is held aside).
#[derive(Default)]
#[repr(C, align(64))]
struct Slot<V> {
    fan: FanId,
    profile: V,
}

/// Open addressing with linear probing and backward-shift deletion (no tombstones, so
/// probe lengths do not grow with churn); grows at 13/16 full.
#[derive(Default)]
pub(super) struct FanTable<V> {
    slots: Vec<Slot<V>>,
    /// `64 - log2(slots.len())`: a fan's home slot is the top bits of a Fibonacci hash.
    shift: u32,
    len: usize,
    /// The profile of fan id 0, which the free-slot marker cannot hold.
    zero: Option<V>,
}

impl<V: Default> FanTable<V> {
    /// Fans held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
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
    pub(super) fn prefetch(&self, fan: FanId) {
        if !self.slots.is_empty() {
            crate::prefetch::line(&self.slots[self.home(fan)]);
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

    /// `fan`'s profile.
    #[inline]
    pub(super) fn get(&self, fan: FanId) -> Option<&V> {
        if fan == 0 {
            return self.zero.as_ref();
        }
        self.find(fan).map(|i| &self.slots[i].profile)
    }

    /// `fan`'s profile, to change it.
    pub(super) fn get_mut(&mut self, fan: FanId) -> Option<&mut V> {
        if fan == 0 {
            return self.zero.as_mut();
        }
        self.find(fan).map(|i| &mut self.slots[i].profile)
    }

    /// `fan`'s profile, a default one inserted if it had none.
    pub(super) fn get_or_default(&mut self, fan: FanId) -> &mut V {
        if fan == 0 {
            return self.zero.get_or_insert_with(V::default);
        }
        if let Some(i) = self.find(fan) {
            return &mut self.slots[i].profile;
        }
        if (self.len + 1) * 16 > self.slots.len() * 13 {
            self.grow();
        }
        let mut i = self.home(fan);
        while self.slots[i].fan != 0 {
            i = (i + 1) & self.mask();
        }
        self.len += 1;
        self.slots[i].fan = fan;
        &mut self.slots[i].profile
    }

    /// Removes `fan`, shifting back the fans probed past its slot so every fan stays
    /// reachable from its home without tombstones.
    pub(super) fn remove(&mut self, fan: FanId) -> Option<V> {
        if fan == 0 {
            return self.zero.take();
        }
        let mut hole = self.find(fan)?;
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
        Some(removed.profile)
    }

    /// Every fan held.
    pub(super) fn fans(&self) -> impl Iterator<Item = FanId> + '_ {
        let zero = self.zero.as_ref().map(|_| 0);
        self.slots
            .iter()
            .filter(|s| s.fan != 0)
            .map(|s| s.fan)
            .chain(zero)
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(Slot::default)
                .take(capacity)
                .collect(),
        );
        self.shift = 64 - capacity.trailing_zeros();
        let mask = self.mask();
        for slot in old.into_iter().filter(|s| s.fan != 0) {
            let mut i = self.home(slot.fan);
            while self.slots[i].fan != 0 {
                i = (i + 1) & mask;
            }
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
    fn holds_what_a_hash_map_holds_through_inserts_updates_and_removals() {
        let mut table = FanTable::<Profile>::default();
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A small key space, so the same fans come back, fan 0 among them, and clustered
            // ids, so probes run past other fans' homes.
            let fan = match x % 4 {
                0 => x % 3_000,
                _ => (x >> 8) % 20_000 * 0x1_0000_0000,
            };
            match x >> 60 {
                0..=8 => {
                    *table.get_or_default(fan) = profile(step);
                    model.insert(fan, step);
                }
                9..=14 => {
                    assert_eq!(table.remove(fan).is_some(), model.remove(&fan).is_some());
                }
                _ => {
                    let held = table.get(fan);
                    let expected = model.get(&fan).map(|&s| profile(s));
                    let expected = expected.as_ref();
                    assert_eq!(held, expected, "fan {fan} at step {step}");
                }
            }
            assert_eq!(table.len(), model.len());
        }
        for (&fan, &step) in &model {
            assert_eq!(table.get(fan), Some(&profile(step)));
        }
        let mut fans: Vec<FanId> = table.fans().collect();
        let mut expected: Vec<FanId> = model.keys().copied().collect();
        fans.sort_unstable();
        expected.sort_unstable();
        assert_eq!(fans, expected);
    }
}
