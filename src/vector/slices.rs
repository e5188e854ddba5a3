//! Cutting slices into consecutive parts, and a few columns held in place.

/// Splits off the first `len` elements of a mutable slice.
pub(super) fn take<'a, T>(s: &mut &'a mut [T], len: usize) -> &'a mut [T] {
    let (head, tail) = std::mem::take(s).split_at_mut(len);
    *s = tail;
    head
}

pub(super) fn take_ref<'a, T>(s: &mut &'a [T], len: usize) -> &'a [T] {
    let (head, tail) = s.split_at(len);
    *s = tail;
    head
}

/// Constraints whose column slices a lane holds in place; more go on the heap.
pub(super) const INLINE_COLUMNS: usize = 4;

/// Slices of `k` columns: in place for the usual handful of constraints, so that splitting a
/// batch into lanes allocates nothing per lane.
pub(super) enum Slices<'a, T> {
    Inline([&'a mut [T]; INLINE_COLUMNS], usize),
    Heap(Vec<&'a mut [T]>),
}

impl<'a, T> Slices<'a, T> {
    pub(super) fn collect(it: impl ExactSizeIterator<Item = &'a mut [T]>) -> Self {
        if it.len() > INLINE_COLUMNS {
            return Self::Heap(it.collect());
        }
        let mut held: [&'a mut [T]; INLINE_COLUMNS] = Default::default();
        let mut len = 0;
        for (slot, s) in held.iter_mut().zip(it) {
            *slot = s;
            len += 1;
        }
        Self::Inline(held, len)
    }

    pub(super) fn as_mut(&mut self) -> &mut [&'a mut [T]] {
        match self {
            Self::Inline(held, len) => &mut held[..*len],
            Self::Heap(v) => v,
        }
    }
}

impl<T> Default for Slices<'_, T> {
    /// No columns.
    fn default() -> Self {
        Self::Inline(Default::default(), 0)
    }
}
