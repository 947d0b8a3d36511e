//! Deadlock detection over every resource and session.
//!
//! # The wait-for graph
//! Nodes are the sessions that have pending requests and the pending requests themselves. A
//! session is one thread of control (like a DLM transaction): while it has a pending request it
//! releases nothing, so it waits for every one of its requests. Edges:
//! - session → each of its pending requests;
//! - request → the session of every *other* lock on the same resource whose granted mode is
//!   incompatible with the requested mode (a holder, converting or not): that session has to
//!   release or convert down;
//! - new request → every queued conversion on the resource and the waiter just ahead of it
//!   (a new request is granted only when the convert queue is empty and it is first in line;
//!   the waiter ahead carries the rest of the line transitively).
//!
//! A deadlock is a cycle. It exists exactly when some strongly connected component has more
//! than one node; every request in such a component lies on a cycle. The victim is the youngest
//! request (highest sequence number) in any such component: it is denied with
//! [`crate::Denial::Deadlock`], and detection runs again until no cycle is left. The youngest
//! request is the one that has waited least; when a new request closes a cycle, it is that
//! request itself, so the client that caused the deadlock is the one told.
//!
//! A session waiting for its own lock (two locks of one session on one resource, in
//! incompatible modes) is a cycle too: it would wait forever.

use std::collections::BTreeMap;

use crate::machine::StateMachine;
use crate::types::{LockRef, SessionId};

/// The youngest request on a wait-for cycle, if there is a cycle.
pub(crate) fn find_victim(sm: &StateMachine) -> Option<LockRef> {
    // Every cycle passes through a session that holds a lock (the end of a request -> holder
    // edge) and waits (it has an edge out). Without such a session there is nothing to look for,
    // which is the common case of many clients queueing for locks they do not hold.
    let holds_and_waits = sm.pending.values().any(|l| {
        sm.locks
            .range(LockRef::new(l.session.0, 0)..=LockRef::new(l.session.0, u64::MAX))
            .any(|(_, lock)| lock.granted.is_some())
    });
    if !holds_and_waits {
        return None;
    }
    // Requests are nodes 0..n in age order; sessions follow.
    let requests: Vec<LockRef> = sm.pending.values().copied().collect();
    let index: BTreeMap<LockRef, usize> =
        requests.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let mut sessions: BTreeMap<SessionId, usize> = BTreeMap::new();
    for l in &requests {
        let next = requests.len() + sessions.len();
        sessions.entry(l.session).or_insert(next);
    }
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); requests.len() + sessions.len()];
    for (i, l) in requests.iter().enumerate() {
        adj[sessions[&l.session]].push(i);
        let lock = &sm.locks[l];
        let pending = lock.pending.expect("pending index names pending requests");
        let res = sm.resource(&lock.key()).expect("resource of a lock exists");
        let edges = &mut adj[i];
        for h in res.granted.values() {
            if h == l {
                continue;
            }
            let held = sm.locks[h]
                .granted
                .expect("grant queue holds granted locks")
                .mode;
            if !held.compatible(pending.mode)
                && let Some(&s) = sessions.get(&h.session)
            {
                edges.push(s);
            }
        }
        if lock.granted.is_none() {
            edges.extend(res.converting.values().map(|c| index[c]));
            if let Some((_, ahead)) = res.waiting.range(..pending.seq).next_back() {
                edges.push(index[ahead]);
            }
        }
        edges.sort_unstable();
        edges.dedup();
    }
    let (component, sizes) = strongly_connected(&adj);
    (0..requests.len())
        .rev()
        .find(|&i| sizes[component[i]] > 1)
        .map(|i| requests[i])
}

/// Tarjan's algorithm without recursion (wait queues can be long). Returns each node's
/// component number and the size of each component.
fn strongly_connected(adj: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![UNSEEN; n];
    let mut sizes = Vec::new();
    let mut counter = 0;
    let mut calls: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, 0));
        while let Some(&(v, next)) = calls.last() {
            if let Some(&w) = adj[v].get(next) {
                calls.last_mut().expect("non-empty").1 += 1;
                if order[w] == UNSEEN {
                    order[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == order[v] {
                let id = sizes.len();
                let mut size = 0;
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w] = false;
                    component[w] = id;
                    size += 1;
                    if w == v {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
    }
    (component, sizes)
}

#[cfg(test)]
mod tests {
    use super::strongly_connected;

    #[test]
    fn components() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3, 3 -> 4 -> 3, 5 alone.
        let adj = vec![vec![1], vec![2], vec![0, 3], vec![4], vec![3], vec![]];
        let (c, sizes) = strongly_connected(&adj);
        assert_eq!(c[0], c[1]);
        assert_eq!(c[1], c[2]);
        assert_eq!(c[3], c[4]);
        assert_ne!(c[0], c[3]);
        assert_eq!(sizes[c[0]], 3);
        assert_eq!(sizes[c[3]], 2);
        assert_eq!(sizes[c[5]], 1);
    }

    #[test]
    fn long_chain_does_not_recurse() {
        let n = 200_000;
        let adj: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![0] })
            .collect();
        let (_, sizes) = strongly_connected(&adj);
        assert_eq!(sizes, vec![n]);
    }
}
