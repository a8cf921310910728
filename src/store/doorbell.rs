//! The doorbell: how a blocking wait learns that another process committed without
//! polling. Every write transaction that changed a row touches `<state>/doorbell` after
//! its commit; a waiter watches the state directory with inotify and sleeps in `poll(2)`
//! until the doorbell's attributes change, a lease runs out, or its deadline passes.
//!
//! The file is touched *after* the commit is visible, so a waiter that armed its watch
//! before it last read `PRAGMA data_version` cannot miss a commit: either the commit
//! came first (the version moved) or its ring is queued on the inotify descriptor. The
//! WAL file is no substitute: SQLite writes its frames before the commit is published in
//! the shared-memory index, so a waiter woken by those writes could read the old version
//! and go back to sleep on a commit that then arrives silently.
//!
//! The watch is armed only while a wait sleeps and removed as soon as it wakes. Closing
//! an inotify descriptor that still has a watch waits for the kernel's SRCU grace
//! period (5–16 ms measured on Linux 6.18), and every process closes its descriptors at
//! exit: a waiter that kept its watch to the end exited that much after it had printed
//! its answer. A watch removed a millisecond or more before the close costs nothing.
//!
//! Where inotify is unavailable (not Linux, no instances left, an exotic file system),
//! `Bell::watch` returns `None` and the waiter polls `data_version` as before.

use std::path::Path;
use std::time::Instant;

/// The file every committing writer touches.
pub const FILE: &str = "doorbell";

/// Rings the doorbell: one `utimensat(2)`, created on first use. Best effort: a failure
/// costs waiters their instant wake-up (they still wake at their next deadline or when
/// the next write rings), never the writer its commit.
pub fn ring(state_dir: &Path) {
    imp::ring(state_dir)
}

/// An armed watch on the doorbell.
pub struct Bell(imp::Watch);

impl Bell {
    /// Arms a watch on `state_dir`'s doorbell, or `None` where notifications are not
    /// available (the caller then polls).
    pub fn watch(state_dir: &Path) -> Option<Bell> {
        imp::Watch::new(state_dir).map(Bell)
    }

    /// Arms the watch again after [`Bell::disarm`]; false when that failed (the caller
    /// then polls). A no-op while armed.
    pub fn arm(&self) -> bool {
        self.0.arm()
    }

    /// Removes the watch while keeping the descriptor, so the close at exit is quick.
    pub fn disarm(&self) {
        self.0.disarm()
    }

    /// Forgets rings already queued (returning whether there were any): the caller is
    /// about to re-read `data_version`, which covers every commit they announced.
    pub fn drain(&self) -> bool {
        self.0.drain()
    }

    /// Sleeps until the doorbell rings or `until` passes (forever when `None`). Returns
    /// false when the watch broke and the caller should fall back to polling.
    pub fn sleep(&self, until: Option<Instant>) -> bool {
        self.0.sleep(until)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::fd::OwnedFd;
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use rustix::fs::{utimensat, AtFlags, Timestamps, CWD, UTIME_NOW};
    use rustix::io::Errno;
    use std::cell::Cell;
    use std::mem::MaybeUninit;
    use std::path::Path;
    use std::path::PathBuf;
    use std::time::Instant;

    pub fn ring(state_dir: &Path) {
        let path = state_dir.join(super::FILE);
        let now = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
        };
        if utimensat(CWD, &path, &now, AtFlags::empty()) == Err(Errno::NOENT) {
            // The first ring creates the file; its creation wakes directory watchers too.
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
        }
    }

    pub struct Watch {
        fd: OwnedFd,
        dir: PathBuf,
        /// The watch descriptor while armed.
        armed: Cell<Option<i32>>,
    }

    impl Watch {
        pub fn new(state_dir: &Path) -> Option<Watch> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            let watch = Watch {
                fd,
                dir: state_dir.to_path_buf(),
                armed: Cell::new(None),
            };
            watch.arm().then_some(watch)
        }

        pub fn arm(&self) -> bool {
            if self.armed.get().is_some() {
                return true;
            }
            // The directory, not the file: the doorbell may not exist yet, and a watch on
            // the directory survives the file being replaced. ATTRIB is the touch; the
            // others are its creation or replacement. Not MODIFY: SQLite's own writes to
            // the WAL would wake every waiter before each commit is even visible.
            let added = inotify::add_watch(
                &self.fd,
                &self.dir,
                WatchFlags::ATTRIB
                    | WatchFlags::CREATE
                    | WatchFlags::MOVED_TO
                    | WatchFlags::ONLYDIR,
            );
            match added {
                Ok(wd) => {
                    self.armed.set(Some(wd));
                    true
                }
                Err(_) => false,
            }
        }

        pub fn disarm(&self) {
            if let Some(wd) = self.armed.take() {
                // Best effort: a watch left in place only makes the close slow.
                let _ = inotify::remove_watch(&self.fd, wd);
            }
        }

        pub fn drain(&self) -> bool {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut rang = false;
            // A non-blocking read until the queue is empty; what the events say does
            // not matter, since the caller re-reads `data_version` next.
            while rustix::io::read(&self.fd, &mut buf).is_ok_and(|(read, _)| !read.is_empty()) {
                rang = true;
            }
            rang
        }

        pub fn sleep(&self, until: Option<Instant>) -> bool {
            let timeout = until.map(|until| {
                let left = until.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    // Rounded up, so a wake-up never comes a fraction early and spins.
                    tv_nsec: i64::from(left.subsec_nanos().div_ceil(1_000_000) * 1_000_000)
                        .min(999_999_999),
                }
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => true,
                Err(_) => false,
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::Path;
    use std::time::Instant;

    pub fn ring(_state_dir: &Path) {}

    pub struct Watch;

    impl Watch {
        pub fn new(_state_dir: &Path) -> Option<Watch> {
            None
        }

        pub fn arm(&self) -> bool {
            false
        }

        pub fn disarm(&self) {}

        pub fn drain(&self) -> bool {
            false
        }

        pub fn sleep(&self, _until: Option<Instant>) -> bool {
            false
        }
    }
}
