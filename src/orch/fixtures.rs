//! What orch's unit tests start from: a real store in a temp dir with one run and task.

use crate::inbox;
use crate::orch::changes::Changes;
use crate::orch::runs::{self, NewRun, RunRow};
use crate::orch::tasks::{self, TaskSpec};
use crate::store::{Durability, Store};
use std::path::Path;

/// A new store at `dir` with run `r1` and its task `a`, both as plain as they come.
pub(crate) fn store_with_task(dir: &Path) -> (Store, RunRow) {
    let (mut store, _) = Store::init(dir, Durability::Normal).unwrap();
    let cfg = inbox::Config::default();
    let run = store
        .write(|tx| {
            let mut changes = Changes::default();
            let new = NewRun {
                name: Some("r1"),
                title: "Run",
                base_ref: None,
                kind: "plan",
            };
            runs::create(tx, &cfg, &mut changes, &new)?;
            let run = runs::get(tx, "r1")?;
            let spec = TaskSpec {
                key: "a".into(),
                title: "A".into(),
                ..TaskSpec::default()
            };
            tasks::add(tx, &cfg, &mut changes, &run, &spec)?;
            Ok(run)
        })
        .unwrap();
    (store, run)
}
