//! Tasks: the plan format (`spec`), the stored row and its status changes (`row`),
//! adding and importing (`add`), reading tasks as JSON (`load`), and writing many of
//! them as JSON straight from their rows (`json`). Dependencies are
//! [`super::dag`]'s, cancelling is [`super::cancel`]'s. This file only declares and
//! re-exports.

mod add;
mod json;
pub(crate) mod load;
pub(crate) mod row;
mod spec;

pub use add::{add, import};
pub use json::write_tasks;
pub(crate) use load::question_detail;
pub use load::{attempts, each, load, load_one, Select};
pub use row::{find_row, get_row, waiting_status, TaskRow};
pub(crate) use row::{set_status, Transition};
pub use spec::{Plan, TaskSpec, DEFAULT_KIND, DEFAULT_MAX_ATTEMPTS, DEFAULT_TO};
