package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Quota bounds what one job may hold on a node (wire.Quota: it travels in job records).
type Quota = wire.Quota

// DefaultQuota is what a job may hold on a node unless its submission or namespace says
// otherwise: enough for any benchmark in engine/bench, few enough that a job submitting tasks
// without end stays near 2 GiB (512 waiting instances of a Go guest, ~4 MiB each, and 10,000
// queued tasks) and the node's other jobs keep their turn. The
// submission rate is unbounded by default: the pool's turns keep one job's flood from delaying
// another's tasks, and Tasks bounds what the flood holds.
var DefaultQuota = Quota{Tasks: 10_000, Waiting: 512, SubmitRate: -1, SubmitBurst: -1, ObjectBytes: 2 << 30}

// ErrJobEnded is the cause of the cancellation of every task of a job that ended.
var ErrJobEnded = errors.New("the job has ended")

// errReturned is the cause a call's context ends with when the call returned: its children go on
// (their results may be in its output). Any other cause ends them too.
var errReturned = errors.New("the calling task returned")

// jobState is one job's share of the node: its quota, what it holds against it, and the context
// every task of the job here runs under.
type jobState struct {
	name    string
	quota   Quota
	ctx     context.Context
	cancel  context.CancelCauseFunc
	ended   error
	tasks   int
	waiting int
	tokens  float64
	last    time.Time
}

// maxEnded bounds the ended jobs the pipeline remembers (to refuse their late tasks).
const maxEnded = 4096

// job returns job's state, making it. p.mu is held.
func (p *Pipeline) job(name string) *jobState {
	js := p.jobs[name]
	if js == nil {
		js = &jobState{name: name, quota: p.quotas[name].Or(p.defaultQuota)}
		if err := p.ended[name]; err != nil {
			js.ended = err
		}
		js.ctx, js.cancel = context.WithCancelCause(p.Ctx)
		p.jobs[name] = js
	}
	return js
}

// forget drops js once nothing of it runs, unless it carries something to remember. p.mu is held.
func (p *Pipeline) forget(js *jobState) {
	if js.tasks > 0 || js.waiting > 0 || p.jobs[js.name] != js {
		return
	}
	if q := js.quota; q.SubmitRate > 0 && !js.last.IsZero() &&
		js.tokens+time.Since(js.last).Seconds()*q.SubmitRate < float64(max(q.SubmitBurst, 1)) {
		return // its bucket is still refilling: forgetting it would hand the job a full burst
	}
	delete(p.jobs, js.name)
	js.cancel(errReturned)
}

// admit counts one more task of job against its quota, or says which quota refuses it.
func (p *Pipeline) admit(name string) (*jobState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	js := p.job(name)
	if js.ended != nil {
		err := &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("job %s: %v", name, js.ended)}
		p.forget(js)
		return nil, err
	}
	q := js.quota
	if q.Tasks > 0 && js.tasks >= q.Tasks {
		return nil, &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaJobTasks,
			Message: fmt.Sprintf("job %s has %d tasks in flight on this node, its quota (tasks); try again as they end", name, js.tasks)}
	}
	if q.SubmitRate > 0 {
		now := time.Now()
		burst := float64(max(q.SubmitBurst, 1))
		if js.last.IsZero() {
			js.tokens = burst
		} else {
			js.tokens = min(burst, js.tokens+now.Sub(js.last).Seconds()*q.SubmitRate)
		}
		js.last = now
		if js.tokens < 1 {
			return nil, &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaJobSubmitRate,
				Message: fmt.Sprintf("job %s submits tasks faster than its quota of %g per second (submit_rate)", name, q.SubmitRate)}
		}
		js.tokens--
	}
	js.tasks++
	return js, nil
}

// enter counts one more task of job that was admitted elsewhere (a placed task run here after
// all): only a job that ended refuses it.
func (p *Pipeline) enter(name string) (*jobState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	js := p.job(name)
	if js.ended != nil {
		err := &abi.Error{Kind: abi.KindCancelled, Message: fmt.Sprintf("job %s: %v", name, js.ended)}
		p.forget(js)
		return nil, err
	}
	js.tasks++
	return js, nil
}

// done counts a task of js as ended.
func (p *Pipeline) done(js *jobState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	js.tasks--
	p.forget(js)
}

// SetQuota sets job's quota on this node (zero fields: the default). Tasks already admitted
// stay.
func (p *Pipeline) SetQuota(job string, q Quota) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q == (Quota{}) {
		delete(p.quotas, job)
	} else {
		p.quotas[job] = q
	}
	if js := p.jobs[job]; js != nil {
		js.quota = q.Or(p.defaultQuota)
	}
}

// SetDefaultQuota sets the quota of every job that has none of its own.
func (p *Pipeline) SetDefaultQuota(q Quota) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.defaultQuota = q.Or(DefaultQuota)
	for name, js := range p.jobs {
		js.quota = p.quotas[name].Or(p.defaultQuota)
	}
}

// EndJob ends every task of job on this node, wherever it came from, and refuses the job's
// tasks from now on: the job has ended (it returned, failed or was stopped), and what it started
// ends with it. The tasks' results say cancelled, with why.
func (p *Pipeline) EndJob(job string, why error) {
	if why == nil {
		why = ErrJobEnded
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended[job] == nil {
		p.endedOrder = append(p.endedOrder, job)
		if len(p.endedOrder) > maxEnded {
			delete(p.ended, p.endedOrder[0])
			p.endedOrder = p.endedOrder[1:]
		}
	}
	p.ended[job] = why
	delete(p.quotas, job) // an ended job admits nothing more
	js := p.job(job)
	js.ended = why
	js.cancel(why)
	p.forget(js)
}

// Wait runs wait for a call of job that waits on other work, counted against the job's Waiting
// quota: past it, the call fails at once instead of holding one more instance while it waits.
func (p *Pipeline) Wait(job string, wait func() error) error {
	p.mu.Lock()
	js := p.job(job)
	if q := js.quota.Waiting; q > 0 && js.waiting >= q {
		p.forget(js)
		p.mu.Unlock()
		return &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaJobWaiting,
			Message: fmt.Sprintf("job %s has %d calls waiting on other work on this node, its quota (waiting): each holds its instance's memory", job, js.waiting)}
	}
	js.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		js.waiting--
		p.forget(js)
		p.mu.Unlock()
	}()
	return wait()
}

// Quota is job's quota on this node.
func (p *Pipeline) Quota(job string) Quota {
	p.mu.Lock()
	defer p.mu.Unlock()
	if js := p.jobs[job]; js != nil {
		return js.quota
	}
	return p.quotas[job].Or(p.defaultQuota)
}

// JobLoad is what one job holds on this node.
type JobLoad struct {
	Tasks, Waiting int
	Quota          Quota
	Ended          bool
}

// Load reports what job holds on this node.
func (p *Pipeline) Load(job string) JobLoad {
	p.mu.Lock()
	defer p.mu.Unlock()
	js := p.jobs[job]
	if js == nil {
		return JobLoad{Quota: p.quotas[job].Or(p.defaultQuota), Ended: p.ended[job] != nil}
	}
	return JobLoad{Tasks: js.tasks, Waiting: js.waiting, Quota: js.quota, Ended: js.ended != nil}
}

// taskContext is the context a task of js runs under: it ends when the job ends, when the node
// closes, and, unless the task is detached, when its parent (the call that submitted it) fails,
// is cancelled or times out. A parent that returns leaves its children running: their results
// may be in its output. stop releases the link to the parent.
func taskContext(js *jobState, parent context.Context) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(js.ctx)
	if parent == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(parent, func() {
		if cause := context.Cause(parent); !errors.Is(cause, errReturned) {
			cancel(fmt.Errorf("its parent task ended: %w", cause))
		}
	})
	return ctx, func(cause error) {
		stop()
		cancel(cause)
	}
}
