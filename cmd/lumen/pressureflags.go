package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine"
)

// pressureFlags are what one job may hold on the node and what the node holds in all: the
// defaults of the jobs' quotas (a job's submission and its namespace may set its own), the
// node's queue of calls waiting for room, its spill, and the longest time limit a task may ask
// for. See docs/api.md, "Quotas and overload".
type pressureFlags struct {
	jobTasks, jobWaiting, maxQueued *int
	jobObjectBytes, spillBytes      *int64
	maxTaskTimeout                  *time.Duration
}

func addPressureFlags(fl *flag.FlagSet) pressureFlags {
	d := engine.DefaultJobQuota
	return pressureFlags{
		jobTasks:       fl.Int("job-tasks", d.Tasks, "default quota: a job's tasks in flight on the node (queued, running, waiting, placed out)"),
		jobWaiting:     fl.Int("job-waiting", d.Waiting, "default quota: a job's calls waiting on other work while holding their instance"),
		jobObjectBytes: fl.Int64("job-object-bytes", d.ObjectBytes, "default quota: a job's object bytes on the node, in memory and spilled"),
		maxQueued:      fl.Int("max-queued", engine.DefaultMaxQueued, "calls that may wait for room on the node; past it work is refused (429, node_queue)"),
		spillBytes:     fl.Int64("spill-bytes", engine.DefaultSpillBytes, "most bytes the object store spills to disk"),
		maxTaskTimeout: fl.Duration("max-task-timeout", engine.DefaultMaxTaskTimeout, "longest time limit a task or call may ask for"),
	}
}

// apply checks the parsed flags and sets them in cfg.
func (f pressureFlags) apply(cfg *engine.Config) error {
	switch {
	case *f.jobTasks < 1, *f.jobWaiting < 1, *f.maxQueued < 1:
		return fmt.Errorf("--job-tasks, --job-waiting and --max-queued must be at least 1")
	case *f.jobObjectBytes < 1, *f.spillBytes < 1:
		return fmt.Errorf("--job-object-bytes and --spill-bytes must be positive")
	case *f.maxTaskTimeout <= 0:
		return fmt.Errorf("--max-task-timeout must be positive, not %v", *f.maxTaskTimeout)
	}
	cfg.JobQuota = engine.Quota{Tasks: *f.jobTasks, Waiting: *f.jobWaiting, ObjectBytes: *f.jobObjectBytes}
	cfg.MaxQueued, cfg.SpillBytes, cfg.MaxTaskTimeout = *f.maxQueued, *f.spillBytes, *f.maxTaskTimeout
	return nil
}
