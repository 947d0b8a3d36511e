//! A bounded queue between threads that never blocks the producer: when it is full, the
//! oldest item is dropped and counted.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Dropped since the consumer last asked.
    dropped: u64,
    /// `Some(deadline)` once closed: no more pushes; the consumer drains until the deadline.
    closed: Option<Instant>,
}

/// What [`Queue::pop`] got.
#[derive(Debug)]
pub(crate) enum Pop<T> {
    Item(T),
    /// The deadline passed with nothing to take.
    Timeout,
    /// Closed and empty.
    Closed,
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize) -> Queue<T> {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                dropped: 0,
                closed: None,
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic elsewhere while holding the lock leaves consistent data (every change is one
        // VecDeque call), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `item`, dropping the oldest one when full. Returns false (and drops `item`) once
    /// the queue is closed.
    pub(crate) fn push(&self, item: T) -> bool {
        let mut state = self.lock();
        if state.closed.is_some() {
            return false;
        }
        if state.items.len() >= state.capacity {
            state.items.pop_front();
            state.dropped += 1;
        }
        state.items.push_back(item);
        drop(state);
        self.cond.notify_one();
        true
    }

    /// Takes the oldest item, waiting until `deadline` (forever with `None`).
    pub(crate) fn pop(&self, deadline: Option<Instant>) -> Pop<T> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Pop::Item(item);
            }
            if state.closed.is_some() {
                return Pop::Closed;
            }
            state = match deadline {
                None => self.cond.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Pop::Timeout;
                    }
                    self.cond
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Waits until `until` or until the queue is closed; returns the close deadline if it was.
    pub(crate) fn sleep(&self, until: Instant) -> Option<Instant> {
        let mut state = self.lock();
        loop {
            if state.closed.is_some() {
                return state.closed;
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            state = self
                .cond
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The number of items dropped since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.lock().dropped)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Refuses further pushes; the consumer drains what is left until `deadline`.
    pub(crate) fn close(&self, deadline: Instant) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(deadline);
        }
        drop(state);
        self.cond.notify_all();
    }

    /// The close deadline, once closed.
    pub(crate) fn closed(&self) -> Option<Instant> {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn drops_oldest_and_counts() {
        let q = Queue::new(3);
        for i in 0..5 {
            assert!(q.push(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
        assert!(matches!(q.pop(None), Pop::Item(2)));
        q.close(Instant::now());
        assert!(!q.push(9));
        assert!(matches!(q.pop(None), Pop::Item(3)));
        assert!(matches!(q.pop(None), Pop::Item(4)));
        assert!(matches!(q.pop(None), Pop::Closed));
    }

    #[test]
    fn pop_times_out() {
        let q: Queue<u8> = Queue::new(1);
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(matches!(q.pop(Some(deadline)), Pop::Timeout));
        assert!(Instant::now() >= deadline);
    }
}
