//! `Orch`, the facade the CLI and the council use: the store, the settings and maybe the
//! repository, with one short transaction per step.

use super::changes::Changes;
use super::{reconcile, repair};
use crate::error::Result;
use crate::inbox;
use crate::repo::Repo;
use crate::store::events::Event;
use crate::store::Store;
use rusqlite::Connection;

/// The facade the CLI uses: the store and the settings, one short transaction per step,
/// and the repository when there is one (then reconcile also reads attempt branches and
/// worktrees, and repairs dispatches that died half-way).
pub struct Orch<'s> {
    pub store: &'s mut Store,
    pub cfg: inbox::Config,
    pub repo: Option<&'s Repo>,
}

impl<'s> Orch<'s> {
    #[cfg(test)]
    pub fn new(store: &'s mut Store, cfg: inbox::Config) -> Self {
        Orch {
            store,
            cfg,
            repo: None,
        }
    }

    /// The same, reading the repository too.
    pub fn with_repo(store: &'s mut Store, cfg: inbox::Config, repo: &'s Repo) -> Self {
        Orch {
            store,
            cfg,
            repo: Some(repo),
        }
    }

    /// Runs `f` in one write transaction after bringing attempts in line with their
    /// threads, so a change never acts on a stale picture.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection, &inbox::Config, &mut Changes) -> Result<T>,
    ) -> Result<T> {
        let cfg = &self.cfg;
        self.store.write(|tx| {
            let mut changes = Changes::default();
            reconcile::reconcile_tx(tx, cfg, &mut changes)?;
            f(tx, cfg, &mut changes)
        })
    }

    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.store.read(|tx| f(tx))
    }

    /// Cheap when nothing moved: a read finds no attempt whose thread changed, and no
    /// write lock is taken. With a repository it also reads the live attempts' branch
    /// tips and worktrees, and repairs abandoned dispatches. Returns the events of what
    /// changed.
    pub fn reconcile(&mut self) -> Result<Vec<Event>> {
        // Hook records spooled under a busy lock come first: they may move threads.
        self.store.take_in_spool()?;
        match self.repo {
            Some(repo) => repair::reconcile(self.store, &self.cfg, repo, false),
            None => reconcile::reconcile(self.store, &self.cfg),
        }
    }

    /// `git orch reconcile`: [`Orch::reconcile`], and also attempt branches and
    /// worktrees that no attempt owns.
    pub fn reconcile_thorough(&mut self) -> Result<Vec<Event>> {
        self.store.take_in_spool()?;
        match self.repo {
            Some(repo) => repair::reconcile(self.store, &self.cfg, repo, true),
            None => reconcile::reconcile(self.store, &self.cfg),
        }
    }
}
