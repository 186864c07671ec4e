//! [`DeadlineHeap`]: when each connection slot's deadlines are next looked at, as an indexed
//! min-heap. A slot has at most one entry, which can be moved earlier or removed in
//! O(log n) without allocating (both vectors keep their size), so a closed connection leaves
//! nothing behind and a worker's heap holds at most one entry per live connection.

use std::time::Instant;

/// `pos` of a slot with no entry.
const NONE: u32 = u32::MAX;

pub(crate) struct DeadlineHeap {
    /// (due, slot), ordered as a binary min-heap by due time.
    heap: Vec<(Instant, u32)>,
    /// Each slot's position in `heap`, or [`NONE`].
    pos: Vec<u32>,
}

impl DeadlineHeap {
    pub(crate) fn with_capacity(n: usize) -> DeadlineHeap {
        DeadlineHeap {
            heap: Vec::with_capacity(n),
            pos: Vec::with_capacity(n),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest entry.
    pub(crate) fn peek(&self) -> Option<(Instant, u32)> {
        self.heap.first().copied()
    }

    /// When `slot`'s entry is due, if it has one.
    #[cfg(test)]
    pub(crate) fn due(&self, slot: u32) -> Option<Instant> {
        match self.pos.get(slot as usize) {
            Some(&p) if p != NONE => Some(self.heap[p as usize].0),
            _ => None,
        }
    }

    /// Makes `slot` due at `at` at the latest: adds an entry, or moves a later one to `at`;
    /// an entry due by then already is left as it is.
    pub(crate) fn due_by(&mut self, slot: u32, at: Instant) {
        let s = slot as usize;
        if s >= self.pos.len() {
            self.pos.resize(s + 1, NONE);
        }
        let p = self.pos[s];
        if p == NONE {
            self.heap.push((at, slot));
            let last = self.heap.len() - 1;
            self.pos[s] = last as u32;
            self.sift_up(last);
        } else if at < self.heap[p as usize].0 {
            self.heap[p as usize].0 = at;
            self.sift_up(p as usize);
        }
    }

    /// Removes `slot`'s entry, if it has one.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(&p) = self.pos.get(slot as usize) else {
            return;
        };
        if p == NONE {
            return;
        }
        let (p, last) = (p as usize, self.heap.len() - 1);
        self.swap(p, last);
        self.heap.pop();
        self.pos[slot as usize] = NONE;
        if p < self.heap.len() {
            // The entry moved into `p` may belong above or below it.
            self.sift_up(p);
            self.sift_down(p);
        }
    }

    /// Takes the earliest entry.
    pub(crate) fn pop(&mut self) -> Option<(Instant, u32)> {
        let top = self.peek()?;
        self.remove(top.1);
        Some(top)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                return;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l].0 < self.heap[least].0 {
                least = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[least].0 {
                least = r;
            }
            if least == i {
                return;
            }
            self.swap(i, least);
            i = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// Random moves, removals and pops against a model: the earliest entry and every slot's
    /// due time always agree with it.
    #[test]
    fn agrees_with_a_model() {
        let base = Instant::now();
        let mut heap = DeadlineHeap::with_capacity(4);
        let mut model: BTreeMap<u32, Instant> = BTreeMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (x % 37) as u32;
            let at = base + Duration::from_millis((x >> 8) % 1000);
            match (x >> 40) % 4 {
                0 | 1 => {
                    heap.due_by(slot, at);
                    let e = model.entry(slot).or_insert(at);
                    *e = (*e).min(at);
                }
                2 => {
                    heap.remove(slot);
                    model.remove(&slot);
                }
                _ => {
                    let got = heap.pop();
                    let want = model.iter().map(|(&s, &a)| (a, s)).min();
                    assert_eq!(got.map(|g| g.0), want.map(|w| w.0), "the earliest");
                    if let Some((_, s)) = got {
                        model.remove(&s);
                    }
                }
            }
            assert_eq!(
                heap.peek().map(|p| p.0),
                model.values().min().copied(),
                "peek"
            );
            assert_eq!(heap.due(slot), model.get(&slot).copied(), "slot {slot}");
        }
        while heap.pop().is_some() {}
        assert!(heap.is_empty());
        assert_eq!(heap.due(3), None);
    }

    #[test]
    fn a_later_time_keeps_the_earlier_entry() {
        let t = Instant::now();
        let mut heap = DeadlineHeap::with_capacity(1);
        heap.due_by(5, t + Duration::from_secs(1));
        heap.due_by(5, t + Duration::from_secs(9));
        assert_eq!(heap.due(5), Some(t + Duration::from_secs(1)));
        heap.due_by(5, t);
        assert_eq!(heap.pop(), Some((t, 5)));
        assert_eq!(heap.pop(), None, "one entry per slot");
        heap.remove(99); // never had one: nothing to do
    }
}
