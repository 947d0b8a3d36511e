//! The log writer thread: writes and fsyncs log records off the daemon's loop, with group
//! commit.
//!
//! The loop hands over the bytes of each batch of records ([`Persister::submit`]) with a
//! number that grows with every submission, and goes on taking in commands, sending and
//! applying while the writer works. The writer takes **every** submission waiting when it
//! starts a round, writes them in order with one `write`, and fsyncs them with **one**
//! `fdatasync` if any of them asks for it; then it reports the highest number of the round
//! ([`Persister::completed`]) and wakes the loop. So the commands that arrive during one fsync
//! all go into the next one. A number reported means: that submission and every earlier one
//! are on disk (or were written without fsync, as they asked).
//!
//! The file is shared with the loop behind a mutex only for the rare rewrites (a snapshot,
//! log compaction), which the loop does after [`Persister::wait_idle`]: the writer is then
//! between rounds and has nothing left to write.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

/// One submission: records to append, and whether they must be fsynced.
#[derive(Debug)]
struct Job {
    number: u64,
    bytes: Vec<u8>,
    sync: bool,
}

/// How much the writer grouped (for the logs and the tests).
#[derive(Debug, Default)]
pub struct Counters {
    /// Submissions written.
    pub submissions: AtomicU64,
    /// Write rounds (one `write` each).
    pub rounds: AtomicU64,
    /// fsyncs (at most one per round).
    pub syncs: AtomicU64,
}

/// The handle the loop keeps on its writer thread.
#[derive(Debug)]
pub struct Persister {
    jobs: Option<Sender<Job>>,
    done: Receiver<io::Result<u64>>,
    thread: Option<thread::JoinHandle<()>>,
    /// The highest number submitted.
    submitted: u64,
    /// The highest number reported written.
    written: u64,
    counters: Arc<Counters>,
}

impl Persister {
    /// Starts the writer of `file`; `wake` is called after each round (it wakes the loop).
    /// `fsync: false` writes without syncing (tests and benchmarks only).
    pub fn start(
        name: &str,
        file: Arc<Mutex<File>>,
        fsync: bool,
        wake: impl Fn() + Send + 'static,
    ) -> io::Result<Persister> {
        let (jobs, rx) = channel::<Job>();
        let (tx, done) = channel();
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_loop(&file, fsync, &rx, &tx, &wake, &c))?;
        Ok(Persister {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            submitted: 0,
            written: 0,
            counters,
        })
    }

    /// Queues `bytes` (records in log order) under `number`, which must grow with every call.
    pub fn submit(&mut self, number: u64, bytes: Vec<u8>, sync: bool) -> io::Result<()> {
        debug_assert!(number > self.submitted, "submission numbers must grow");
        self.submitted = number;
        let job = Job {
            number,
            bytes,
            sync,
        };
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| io::Error::other("the log writer thread is gone"))
    }

    /// The highest number written since the last call (None: nothing new). A failed write is
    /// an error: nothing after it may be taken for written.
    pub fn completed(&mut self) -> io::Result<Option<u64>> {
        let mut newest = None;
        loop {
            match self.done.try_recv() {
                Ok(result) => {
                    let n = result?;
                    self.written = n;
                    newest = Some(n);
                }
                Err(TryRecvError::Empty) => return Ok(newest),
                Err(TryRecvError::Disconnected) => {
                    return Err(io::Error::other("the log writer thread is gone"));
                }
            }
        }
    }

    /// Blocks until everything submitted is written; returns the highest number written
    /// since the last [`Persister::completed`] (None: nothing new).
    pub fn wait_idle(&mut self) -> io::Result<Option<u64>> {
        let mut newest = self.completed()?;
        while self.written < self.submitted {
            let n = self
                .done
                .recv()
                .map_err(|_| io::Error::other("the log writer thread is gone"))??;
            self.written = n;
            newest = Some(n);
        }
        Ok(newest)
    }

    /// The highest number submitted.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// The highest number known written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// How much the writer grouped so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the queue ends the writer after what it holds.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(
    file: &Mutex<File>,
    fsync: bool,
    rx: &Receiver<Job>,
    tx: &Sender<io::Result<u64>>,
    wake: &dyn Fn(),
    counters: &Counters,
) {
    let mut buf = Vec::new();
    while let Ok(first) = rx.recv() {
        buf.clear();
        let mut number = first.number;
        let mut sync = first.sync;
        let mut count = 1;
        buf.extend_from_slice(&first.bytes);
        // Group commit: everything that arrived meanwhile shares this write and fsync.
        while let Ok(job) = rx.try_recv() {
            number = job.number;
            sync |= job.sync;
            count += 1;
            buf.extend_from_slice(&job.bytes);
        }
        let result = {
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            f.write_all(&buf).and_then(|()| {
                if sync && fsync {
                    counters.syncs.fetch_add(1, Ordering::Relaxed);
                    f.sync_data()
                } else {
                    Ok(())
                }
            })
        };
        counters.submissions.fetch_add(count, Ordering::Relaxed);
        counters.rounds.fetch_add(1, Ordering::Relaxed);
        let failed = result.is_err();
        if tx.send(result.map(|()| number)).is_err() {
            return;
        }
        wake();
        if failed {
            // Nothing may be written after a failed write: the loop stops the daemon.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_waiting_during_a_round_share_the_next_write_and_fsync() {
        let path = std::env::temp_dir().join(format!("lvs-persist-{}", std::process::id()));
        let file = Arc::new(Mutex::new(File::create(&path).unwrap()));
        // The test holds the file: the writer's first round waits on it while more arrive.
        let hold = file.lock().unwrap();
        let woken = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&woken);
        let mut p = Persister::start("test-writer", Arc::clone(&file), true, move || {
            w.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        // The writer takes submission 1 (alone or with the others) and waits for the file;
        // whatever comes meanwhile waits for the next round.
        p.submit(1, b"one ".to_vec(), true).unwrap();
        for n in 2..=5 {
            p.submit(n, format!("r{n} ").into_bytes(), n != 3).unwrap();
        }
        drop(hold);
        assert_eq!(p.wait_idle().unwrap(), Some(5));
        assert_eq!(p.written(), 5);
        assert_eq!(p.completed().unwrap(), None);
        let c = p.counters();
        assert_eq!(c.submissions.load(Ordering::Relaxed), 5);
        // Five submissions in at most two rounds (1, then 2 to 5), one fsync per round.
        let rounds = c.rounds.load(Ordering::Relaxed);
        assert!((1..=2).contains(&rounds), "{rounds} rounds");
        assert_eq!(c.syncs.load(Ordering::Relaxed), rounds);
        // Joins the writer: its last wake-up is done.
        drop(p);
        assert!(woken.load(Ordering::Relaxed) >= 1);
        assert_eq!(std::fs::read(&path).unwrap(), b"one r2 r3 r4 r5 ");
        std::fs::remove_file(&path).unwrap();
    }
}
