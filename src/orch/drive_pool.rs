//! Drive's dispatchers: worker threads, each with a store connection and a repository
//! of its own, that carry ready tasks through the dispatch pipeline while drive's loop
//! goes on watching the store. A task whose dependency is done is handed to a worker
//! on the next turn of the loop, not after the dispatches already under way.
//!
//! Threads rather than `git orch dispatch` child processes: a dispatch is mostly waiting
//! on git, and a child would add a process start and a database open to every task on
//! a machine where CPU is what bounds the rate. Each worker runs the same pipeline as
//! `git orch dispatch` (its dispatch lock, its undo on failure), so what a killed drive
//! leaves is what a killed dispatch leaves, and reconcile repairs it the same way.

use super::dispatch::{self, Outcome, Request};
use super::facade::Orch;
use super::launch::{Launching, Plan};
use super::runs::RunRow;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::Scope;

/// At most this many dispatches run at once, whatever `--parallel` is: past it they only
/// queue behind each other's git processes for the CPU.
pub const MAX_WORKERS: usize = 8;

/// Opens what one worker dispatches with (made by the caller, which knows where the
/// store and the repository are and how the process was started).
pub trait Dispatchers: Sync {
    /// Runs `work` with a store connection, a repository and a launching workspace port
    /// of its own, for the life of one worker thread.
    fn with_dispatcher(
        &self,
        work: &mut dyn FnMut(&mut Orch<'_>, &Launching<'_>) -> Result<()>,
    ) -> Result<()>;
}

/// A worker's answer: the task, and what its dispatch came to.
type Answer = (String, Result<Outcome>);

/// What the workers share: the queue of tasks to dispatch and the flag that stops them.
/// Made before the threads' scope, so that it outlives them.
pub(crate) struct Queue {
    keys: Mutex<mpsc::Receiver<String>>,
    closing: AtomicBool,
}

/// The workers of one drive and the tasks handed to them that have not answered yet.
pub(crate) struct Pool<'env> {
    jobs: Option<mpsc::Sender<String>>,
    answers: mpsc::Receiver<Answer>,
    queue: &'env Queue,
    /// Handed to a worker, no answer read yet.
    pub pending: Vec<String>,
}

impl Queue {
    /// The queue, and the sending end the pool keeps.
    pub fn new() -> (Queue, mpsc::Sender<String>) {
        let (jobs, keys) = mpsc::channel();
        let queue = Queue {
            keys: Mutex::new(keys),
            closing: AtomicBool::new(false),
        };
        (queue, jobs)
    }
}

impl<'env> Pool<'env> {
    /// Starts `workers` dispatchers in `scope`, taking tasks from `queue`; they end when
    /// the pool is closed.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        workers: usize,
        (queue, jobs): (&'env Queue, mpsc::Sender<String>),
        dispatchers: &'env dyn Dispatchers,
        run: &'env RunRow,
        plan: &'env Plan,
    ) -> Pool<'env> {
        let (answer, answers) = mpsc::channel::<Answer>();
        for _ in 0..workers.max(1) {
            let answer = answer.clone();
            scope.spawn(move || {
                let opened = dispatchers.with_dispatcher(&mut |orch, launching| {
                    serve(orch, launching, run, plan, queue, &answer);
                    Ok(())
                });
                if let Err(err) = opened {
                    // Read by the loop like a failed dispatch: drive ends with it.
                    let _ = answer.send((String::new(), Err(err)));
                }
            });
        }
        Pool {
            jobs: Some(jobs),
            answers,
            queue,
            pending: Vec::new(),
        }
    }

    /// Hands `key` to the next free worker.
    pub fn send(&mut self, key: &str) -> Result<()> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(key.to_owned()));
        match sent {
            Some(Ok(())) => {
                self.pending.push(key.to_owned());
                Ok(())
            }
            _ => Err(Error::internal("every dispatcher of this drive has ended")),
        }
    }

    /// Reads the answers that came; the first failed dispatch is returned as the error
    /// (a base conflict is not one: its task is `blocked` and the loop sees it so).
    pub fn collect(&mut self) -> Result<()> {
        while let Ok((key, outcome)) = self.answers.try_recv() {
            self.pending.retain(|k| *k != key);
            outcome?;
        }
        Ok(())
    }

    /// Handed to a worker and not yet in flight by `in_flight` (read from a snapshot
    /// taken after [`Pool::collect`]): these count against `--parallel` too.
    pub fn preparing(&self, in_flight: impl Fn(&str) -> bool) -> usize {
        self.pending.iter().filter(|key| !in_flight(key)).count()
    }

    /// Stops handing out work: a worker finishes the dispatch it is in (never one cut
    /// halfway) and skips the rest of the queue.
    pub fn close(&mut self) {
        self.queue.closing.store(true, Ordering::SeqCst);
        self.jobs = None;
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

fn serve(
    orch: &mut Orch<'_>,
    launching: &Launching<'_>,
    run: &RunRow,
    plan: &Plan,
    queue: &Queue,
    answer: &mpsc::Sender<Answer>,
) {
    loop {
        let next = match queue.keys.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(key) = next else { return };
        if queue.closing.load(Ordering::SeqCst) {
            return;
        }
        let req = Request {
            key: &key,
            launch: Some(plan),
            ..Request::default()
        };
        let outcome = dispatch::dispatch_outcome(orch, launching, run, &req);
        reap(launching);
        if answer.send((key, outcome)).is_err() {
            return;
        }
    }
}

/// Collects the supervisors that have exited, so a long drive leaves no zombies.
pub(crate) fn reap(launching: &Launching<'_>) {
    launching
        .children
        .borrow_mut()
        .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
}
