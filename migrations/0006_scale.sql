-- Scale (a run of 100k tasks and 300k dependencies): reading a run's tasks should cost
-- a walk of its rows, not a sort and a dependency lookup per task.

-- A run's tasks in creation order without a sort: `status`, `task list` and the rows a
-- `task import` reads back walk this index instead of gathering the run's tasks into a
-- temporary B-tree to order them by id.
CREATE INDEX tasks_by_run ON tasks (run, id);

-- Each task's dependencies as a copy on its own row (keys joined by newlines, which no
-- name holds; in no promised order, readers sort): one index seek into `deps` per task
-- was most of a 100k-task `status`. `deps` stays the truth; these triggers keep the copy
-- in the same statement as every change to it, whoever writes.
ALTER TABLE tasks ADD COLUMN after_keys TEXT;
UPDATE tasks SET after_keys = (
    SELECT group_concat(d.depends_on, char(10)) FROM deps d
    WHERE d.run = tasks.run AND d.task = tasks.key
);
CREATE TRIGGER deps_copy_insert AFTER INSERT ON deps BEGIN
    UPDATE tasks SET after_keys = CASE
            WHEN after_keys IS NULL THEN NEW.depends_on
            ELSE after_keys || char(10) || NEW.depends_on
        END
    WHERE run = NEW.run AND key = NEW.task;
END;
CREATE TRIGGER deps_copy_delete AFTER DELETE ON deps BEGIN
    UPDATE tasks SET after_keys = (
        SELECT group_concat(d.depends_on, char(10)) FROM deps d
        WHERE d.run = OLD.run AND d.task = OLD.task
    )
    WHERE run = OLD.run AND key = OLD.task;
END;
