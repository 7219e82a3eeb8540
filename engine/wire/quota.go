package wire

import "fmt"

// Quota bounds what one job may hold on each node; engine/tasks enforces it at admission. A zero
// field takes the node's default (tasks.DefaultQuota unless configured); a negative one is no
// bound.
type Quota struct {
	// Tasks caps the job's tasks in flight on the node: queued for room, running, waiting on other work,
	// or placed on another node from here. Each holds a goroutine and its result's slot; the
	// running and waiting ones an instance too.
	Tasks int `json:"tasks,omitempty"`
	// Waiting caps the job's calls that wait on other work (object_get, wait) while holding their
	// instance: they give their cpu back while they wait, so without a bound a job whose tasks
	// wait on children it keeps submitting would hold an instance's memory per task.
	Waiting int `json:"waiting,omitempty"`
	// SubmitRate caps the job's task submissions per second, in bursts of up to SubmitBurst.
	SubmitRate  float64 `json:"submit_rate,omitempty"`
	SubmitBurst int     `json:"submit_burst,omitempty"`
	// ObjectBytes caps the bytes of the job's objects on the node, in memory and spilled.
	ObjectBytes int64 `json:"object_bytes,omitempty"`
}

// Or returns q with its zero fields taken from d.
func (q Quota) Or(d Quota) Quota {
	if q.Tasks == 0 {
		q.Tasks = d.Tasks
	}
	if q.Waiting == 0 {
		q.Waiting = d.Waiting
	}
	if q.SubmitRate == 0 {
		q.SubmitRate = d.SubmitRate
	}
	if q.SubmitBurst == 0 {
		q.SubmitBurst = d.SubmitBurst
	}
	if q.ObjectBytes == 0 {
		q.ObjectBytes = d.ObjectBytes
	}
	return q
}

// Validate refuses a quota that cannot be meant: a submission rate with no room for one task.
func (q Quota) Validate() error {
	if q.SubmitRate > 0 && q.SubmitRate < 0.001 {
		return fmt.Errorf("quota: submit_rate %g is below one task per 1000 s", q.SubmitRate)
	}
	return nil
}
