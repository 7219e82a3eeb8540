// Package jobs is Ray's Jobs API: work submitted from outside the cluster (a workflow document
// or one task call) with a record in the replicated state that every node reads, its lifecycle
// (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), namespaces, and the loop by which each node
// acts on the records it applies. A job's code runs through the node's task pipeline and
// workflows (Deps); jobs owns only the records and what they decide.
//
// It may import engine/wire, engine/workflows, host, raftstore and sdk/abi.
package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Jobs (Ray's Jobs API): a job is work submitted from outside the cluster, a workflow document
// or one call of a module's task function, with a record in the replicated state under
// job/<id> that every node reads. The node that accepts a job runs it; its objects, actors and
// tensors are scoped by the job's id (the job string of the rest of the engine), so stopping it
// releases them. Namespaces (ns/<name>) are recorded on first use.
//
// Every change of a record is a write conditional on the record read before it, so two nodes
// racing to end a job (its runner finishing it, a client stopping it, the leader failing it
// when its node dies) cannot both win: the first committed change stands. A node acts on a
// record it applies: the node running a job cancels it when it reads STOPPED, every node kills
// the stopped job's actors and frees its objects and tensors, and the leader fails the jobs of
// a node declared dead unless the job is a workflow, which the leader adopts and which the job
// then follows.

// Keys of the replicated state: the job records, the results of task jobs, the namespaces.
const (
	jobPrefix    = "job/"
	jobOutPrefix = "jobout/"
	nsPrefix     = "ns/"
)

// Job statuses.
const (
	JobPending   = "PENDING"
	JobRunning   = "RUNNING"
	JobSucceeded = "SUCCEEDED"
	JobFailed    = "FAILED"
	JobStopped   = "STOPPED"
)

// Job kinds: what its entrypoint runs.
const (
	JobKindWorkflow = "workflow"
	JobKindTask     = "task"
)

// DefaultNamespace is the namespace of a job submitted without one.
const DefaultNamespace = "default"

// Limits on a job submission.
const (
	MaxJobIDLen       = 128
	MaxNamespaceLen   = 64
	MaxJobMetadata    = 32
	MaxMetadataKeyLen = 128
	MaxMetadataValLen = 1024
	// MaxJobResultBytes caps the result of a task job kept in the replicated state; a larger
	// result stays an object of the job on its node (Job.ResultObject).
	MaxJobResultBytes = 1 << 20
)

// Sentinel errors of jobs.
var (
	// ErrJobNotFound is returned for an unknown job id.
	ErrJobNotFound = wire.Wrap(wire.KindNotFound, errors.New("jobs: no such job"))
	// ErrJobExists is returned when a submission id is taken.
	ErrJobExists = wire.Wrap(wire.KindConflict, errors.New("jobs: job id taken"))
	// ErrJobEnded is returned when stopping a job that has ended already.
	ErrJobEnded = wire.Wrap(wire.KindConflict, errors.New("jobs: job has ended"))
)

// JobSpec is a job submission.
type JobSpec struct {
	// SubmissionID is the job's id; empty generates one. A taken id is refused (ErrJobExists).
	SubmissionID string `json:"submission_id,omitempty"`
	// Namespace groups jobs; default DefaultNamespace.
	Namespace string `json:"namespace,omitempty"`
	// Metadata is kept with the record, for the submitter's use.
	Metadata   map[string]string `json:"metadata,omitempty"`
	Entrypoint JobEntrypoint     `json:"entrypoint"`
	// Quota bounds what the job may hold on each node; zero fields take its namespace's quota,
	// then the node's default. A field over its namespace's is refused.
	Quota wire.Quota `json:"quota,omitzero"`
}

// JobEntrypoint is what a job runs: a workflow document (as POST /v1/workflows takes), or one
// call of Module's task function Function with Args. Grants are the capabilities the job's code
// is granted.
type JobEntrypoint struct {
	Workflow json.RawMessage  `json:"workflow,omitempty"`
	Module   string           `json:"module,omitempty"`
	Function string           `json:"function,omitempty"`
	Args     json.RawMessage  `json:"args,omitempty"`
	Grants   []abi.Capability `json:"grants,omitempty"`
}

// Job is a job's record, as the replicated state holds it.
type Job struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"` // JobKindWorkflow or JobKindTask
	// Entrypoint says what runs: "workflow NAME" or "MODULE.FUNCTION".
	Entrypoint string           `json:"entrypoint"`
	Grants     []abi.Capability `json:"grants,omitempty"`
	Status     string           `json:"status"`
	Message    string           `json:"message,omitempty"`
	// Error is why a FAILED job failed: the guest's error for a task, the step's for a workflow.
	Error *abi.Error `json:"error,omitempty"`
	// Node runs the job: the node that accepted it, or the node that adopted its workflow.
	Node string `json:"node"`
	// Boot is the run of Node that started the job: a record of this node from an earlier run
	// is of a job that the restart ended (unless a workflow, which resumes).
	Boot      string            `json:"boot,omitempty"`
	Submitted time.Time         `json:"submitted"`
	Started   *time.Time        `json:"started,omitempty"`
	Ended     *time.Time        `json:"ended,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// Workflow is the id of the workflow a workflow job runs.
	Workflow string `json:"workflow,omitempty"`
	// ResultObject is set when a task job's result was too large for the replicated state: it
	// is object ResultObject of job ID on Node (GET /v1/objects/N?job=ID there).
	ResultObject int64 `json:"result_object,omitempty"`
	// Quota is what the job may hold on each node (its own, within its namespace's).
	Quota wire.Quota `json:"quota,omitzero"`
	// Released is set when a client stopped the job after it ended: every node ends what it
	// still holds of it (actors, objects, tensors), as for a stopped job.
	Released bool `json:"released,omitempty"`
}

// Ended reports whether status is final.
func jobEnded(status string) bool {
	return status == JobSucceeded || status == JobFailed || status == JobStopped
}

// Namespace is a namespace's record.
type Namespace struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Quota is what each job of the namespace may hold on each node unless it asks for less,
	// and the most it may ask for.
	Quota wire.Quota `json:"quota,omitzero"`
}

// JobFilter selects jobs to list; empty fields select all.
type JobFilter struct {
	Namespace string
	Status    string
}

func jobKey(id string) []byte    { return []byte(jobPrefix + id) }
func jobOutKey(id string) []byte { return []byte(jobOutPrefix + id) }
func nsKey(name string) []byte   { return []byte(nsPrefix + name) }

// validJobName checks an id or namespace: 1 to max bytes of letters, digits, '.', '_' and
// '-', starting with a letter or digit.
func validJobName(field, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s: 1 to %d characters, not %d", field, max, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return fmt.Errorf("%s %q: only letters, digits, '.', '_' and '-', starting with a letter or digit", field, s)
		}
	}
	return nil
}

// Validate checks a submission and names the field at fault. It reads nothing but s.
func (s *JobSpec) Validate() error {
	if s.SubmissionID != "" {
		if err := validJobName("submission_id", s.SubmissionID, MaxJobIDLen); err != nil {
			return err
		}
		if s.SubmissionID == "default" {
			return errors.New(`submission_id "default" is the scope of work submitted without a job; choose another`)
		}
	}
	if s.Namespace != "" {
		if err := validJobName("namespace", s.Namespace, MaxNamespaceLen); err != nil {
			return err
		}
	}
	if err := s.Quota.Validate(); err != nil {
		return err
	}
	if len(s.Metadata) > MaxJobMetadata {
		return fmt.Errorf("metadata: %d entries, at most %d", len(s.Metadata), MaxJobMetadata)
	}
	for k, v := range s.Metadata {
		if k == "" || len(k) > MaxMetadataKeyLen || !utf8.ValidString(k) {
			return fmt.Errorf("metadata: key %q: 1 to %d bytes of UTF-8", k, MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValLen || !utf8.ValidString(v) {
			return fmt.Errorf("metadata[%q]: at most %d bytes of UTF-8", k, MaxMetadataValLen)
		}
	}
	ep := &s.Entrypoint
	hasWF := len(bytes.TrimSpace(ep.Workflow)) > 0 && string(bytes.TrimSpace(ep.Workflow)) != "null"
	hasCall := ep.Module != "" || ep.Function != "" || len(ep.Args) > 0
	switch {
	case hasWF && hasCall:
		return errors.New("entrypoint: give either workflow, or module and function (with args), not both")
	case hasWF:
		if w := bytes.TrimSpace(ep.Workflow); w[0] != '{' || !json.Valid(w) {
			return errors.New("entrypoint.workflow: a workflow document (a JSON object)")
		}
	case ep.Module == "":
		return errors.New("entrypoint: a workflow, or a module and function, is required (entrypoint.module is empty)")
	case ep.Function == "":
		return errors.New("entrypoint.function is required with entrypoint.module")
	default:
		if len(ep.Args) > 0 && !json.Valid(ep.Args) {
			return errors.New("entrypoint.args: not valid JSON")
		}
		// The same rules as a task submitted over the API.
		raw, _ := json.Marshal(abi.TaskRequest{Module: ep.Module, Function: ep.Function, Args: ep.Args})
		if _, err := abi.DecodeTaskRequest(raw); err != nil {
			return fmt.Errorf("entrypoint: %v", err)
		}
	}
	for i, g := range ep.Grants {
		if g == "" {
			return fmt.Errorf("entrypoint.grants[%d]: empty capability", i)
		}
	}
	return nil
}

// ParseJobSpec decodes a submission strictly (unknown fields refused) and validates it. Every
// error names the field at fault.
func ParseJobSpec(b []byte) (*JobSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s JobSpec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("job request: %w", err)
	}
	if dec.More() {
		return nil, errors.New("job request: trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("job request: %w", err)
	}
	return &s, nil
}

// Tasks is how jobs run a task job's call: the node's task pipeline and object store.
type Tasks interface {
	// Check says whether module's task function exists, before a job is recorded.
	Check(ctx context.Context, module, function string) error
	// Submit submits the job's call; its result is object h of the job.
	Submit(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants) (h int64, err error)
	// Get waits (as long as ctx allows) for object h of job and returns its value.
	Get(ctx context.Context, job string, h int64) ([]byte, error)
	// Peek returns object h of job if it is ready.
	Peek(ctx context.Context, job string, h int64) ([]byte, error)
	Release(job string, h int64)
	// Cancel cancels the task whose result is object h of job.
	Cancel(job string, h int64)
}

// Deps is what a Manager needs from its node.
type Deps struct {
	Ctx    context.Context // the node's lifetime
	WG     *sync.WaitGroup // the node waits for the goroutines of running jobs
	Node   *raftstore.Node
	NodeID string
	Boot   string // this run of the node: a record of this node from another run was ended by a restart
	// IsDead says whether the leader declared node dead.
	IsDead func(node string) bool
	// DeadPrefix is the replicated state's prefix of the dead-node records (a change wakes the loop).
	DeadPrefix string
	// Every runs f every d until the node closes.
	Every     func(d time.Duration, f func())
	Workflows *workflows.Manager
	Tasks     Tasks
	// Release frees, on this node, what a stopped job holds besides its task and workflows:
	// its actors, objects and tensors.
	Release func(job string)
	// End ends, on this node, the tasks of a job that ended (the work its root started and left
	// running), and refuses the job's tasks from then on.
	End func(job string, why error)
	// SetQuota sets a job's quota on this node.
	SetQuota func(job string, q wire.Quota)
}

// Manager is a node's share of the jobs: those it runs, and the stopped jobs whose work it has
// released. It is safe for concurrent use.
type Manager struct {
	deps     Deps
	mu       sync.Mutex
	running  map[string]*jobRun
	released map[string]bool

	// Used by the reconcile loop only: the versions of the keys it watches as it last read
	// them, and the workflow jobs that were running at its last full scan (a change of the
	// workflows alone looks at those only).
	jobsVer, wfVer, deadVer    func() uint64
	seenJobs, seenWF, seenDead uint64
	lastFull                   time.Time
	activeWF                   []string
	// settled are the jobs seen ended and acted on: an ended record never changes again, so
	// a pass skips them without decoding them.
	settled map[string]bool
}

// jobRun is a task job running on this node.
type jobRun struct {
	cancel context.CancelFunc
}

// jobWriteTimeout bounds a background write of a job record.
const jobWriteTimeout = 10 * time.Second

// New returns the node's Manager; Start starts acting on the records.
func New(deps Deps) *Manager {
	m := &Manager{deps: deps, running: map[string]*jobRun{}, released: map[string]bool{}, settled: map[string]bool{}}
	kv := deps.Node.KV()
	m.jobsVer, m.wfVer, m.deadVer = kv.Watch(jobPrefix), kv.Watch(workflows.Prefix), kv.Watch(deps.DeadPrefix)
	return m
}

// Start starts the loop that acts on the job records this node applies.
func (m *Manager) Start() { m.deps.Every(20*time.Millisecond, m.reconcileJobs) }

// reconcileJobs acts on the job records when they or the dead nodes changed, and at least every
// second (a new leader finds the jobs of nodes that died before it led); when only workflows
// changed, on the workflow jobs that run.
func (m *Manager) reconcileJobs() {
	j := m
	// The versions are read before the records: a change after this read is seen next time.
	jv, wv, dv := j.jobsVer(), j.wfVer(), j.deadVer()
	full := jv != j.seenJobs || dv != j.seenDead || time.Since(j.lastFull) >= time.Second
	if !full && wv == j.seenWF {
		return
	}
	j.seenJobs, j.seenWF, j.seenDead = jv, wv, dv
	var recs []Job
	if full {
		j.lastFull, j.activeWF = time.Now(), j.activeWF[:0]
		m.deps.Node.KV().View(func(r raftstore.Reader) error {
			return r.Scan([]byte(jobPrefix), func(k, val []byte) error {
				if id := string(k[len(jobPrefix):]); j.settled[id] && endedRecord(val) && (j.releasedHere(id) || !releasedRecord(val)) {
					return nil
				}
				var job Job
				if json.Unmarshal(val, &job) == nil {
					recs = append(recs, job)
					if job.Kind == JobKindWorkflow && !jobEnded(job.Status) {
						j.activeWF = append(j.activeWF, job.ID)
					}
				}
				return nil
			})
		})
	} else {
		for _, id := range j.activeWF {
			if job, err := m.localJob(id); err == nil {
				recs = append(recs, *job)
			}
		}
	}
	leader := m.deps.Node.IsLeader()
	for _, job := range recs {
		if m.deps.Ctx.Err() != nil {
			return
		}
		if !jobEnded(job.Status) && job.Quota != (wire.Quota{}) {
			m.deps.SetQuota(job.ID, job.Quota)
		}
		switch {
		case job.Status == JobStopped || (jobEnded(job.Status) && job.Released):
			m.releaseJob(job.ID)
			j.settled[job.ID] = true
		case jobEnded(job.Status):
			// Ended: its root returned or failed here, or another hand ended it (its node declared
			// dead while it ran). What it started ends with it.
			m.cancelRun(job.ID)
			if !j.settled[job.ID] {
				m.deps.End(job.ID, fmt.Errorf("job %s has ended (%s)", job.ID, job.Status))
			}
			j.settled[job.ID] = true
		case job.Kind == JobKindWorkflow:
			m.followWorkflow(job, leader)
		case job.Node == m.deps.NodeID && job.Boot != m.deps.Boot:
			m.endJob(job.ID, JobFailed, fmt.Sprintf("node %s restarted while the job ran", job.Node), nil)
		case job.Node == m.deps.NodeID && !m.runsHere(job.ID) && time.Since(job.Submitted) > 2*jobWriteTimeout:
			// Its start or its end could not be recorded (no leader for a while).
			m.endJob(job.ID, JobFailed, fmt.Sprintf("node %s lost the job: its start or end could not be recorded", job.Node), nil)
		case leader && job.Node != m.deps.NodeID && m.deps.IsDead(job.Node):
			m.endJob(job.ID, JobFailed, fmt.Sprintf("node %s died", job.Node), nil)
		}
	}
}

// releasedRecord says, without decoding it, whether an encoded record was released after it
// ended.
func releasedRecord(rec []byte) bool { return bytes.Contains(rec, []byte(`"released":true`)) }

// releasedHere says whether this node released job id's work.
func (m *Manager) releasedHere(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.released[id]
}

// endedRecord says, without decoding it, whether an encoded record is of an ended job: the
// status is encoded as "status":"X", which no string value can hold unescaped.
func endedRecord(rec []byte) bool {
	for _, st := range [...]string{JobSucceeded, JobFailed, JobStopped} {
		if bytes.Contains(rec, []byte(`"status":"`+st+`"`)) {
			return true
		}
	}
	return false
}

// followWorkflow brings a workflow job's record in line with its workflow: ended when the
// workflow ended (written by the workflow's owner, or by the leader when the owner is dead),
// and run by the node that adopted the workflow when its first node died.
func (m *Manager) followWorkflow(job Job, leader bool) {
	if job.Workflow == "" {
		// Not recorded as started: the node that accepted it restarted, or died, before it could
		// say so. Its workflow may have been stored already, and resumed here (a restart) or
		// adopted by the leader (a death): then the job runs it; else it never started.
		restarted := job.Node == m.deps.NodeID && job.Boot != m.deps.Boot
		died := leader && job.Node != m.deps.NodeID && m.deps.IsDead(job.Node)
		// Or this node could not record the start (no leader for a while).
		stuck := job.Node == m.deps.NodeID && !restarted && time.Since(job.Submitted) > 2*jobWriteTimeout
		if !restarted && !died && !stuck {
			return
		}
		wf, owner := m.deps.Workflows.OfJob(job.ID)
		switch {
		case wf != "" && (owner == m.deps.NodeID || (died && m.deps.IsDead(owner) && !m.workflowRunning(wf))):
			// Running here, or ended with its owner dead (the leader then ends the job from it).
			m.updateJob(m.deps.Ctx, job.ID, func(j *Job, _ *[]raftstore.Op) bool {
				if j.Status != JobPending || j.Workflow != "" {
					return false
				}
				now := time.Now().UTC()
				j.Status, j.Workflow, j.Started, j.Node, j.Boot = JobRunning, wf, &now, m.deps.NodeID, m.deps.Boot
				return true
			})
		case wf != "":
			// Stored but not yet adopted: look again on the next pass.
		case restarted:
			m.endJob(job.ID, JobFailed, fmt.Sprintf("node %s restarted before the job started", job.Node), nil)
		case stuck:
			m.endJob(job.ID, JobFailed, "the job did not start", nil)
		default:
			m.endJob(job.ID, JobFailed, fmt.Sprintf("node %s died before the job started", job.Node), nil)
		}
		return
	}
	owner := m.deps.Workflows.Owner(job.Workflow)
	meta, err := m.deps.Workflows.Stored(job.Workflow)
	if err != nil {
		return
	}
	mine := string(owner) == m.deps.NodeID || (leader && m.deps.IsDead(string(owner)))
	if meta.State != workflows.Running {
		if !mine {
			return
		}
		switch meta.State {
		case workflows.Succeeded:
			m.endJob(job.ID, JobSucceeded, job.Message, nil) // keeps "node X died; node Y carries on"
		case workflows.Cancelled:
			m.endJob(job.ID, JobStopped, "its workflow was cancelled", nil)
		default:
			msg := "workflow " + meta.State
			if meta.Error != nil {
				msg = meta.Error.Message
			}
			m.endJob(job.ID, JobFailed, msg, meta.Error)
		}
		return
	}
	if leader && len(owner) > 0 && string(owner) != job.Node && m.deps.IsDead(job.Node) {
		dead := job.Node
		m.updateJob(m.deps.Ctx, job.ID, func(j *Job, _ *[]raftstore.Op) bool {
			if j.Status != JobRunning || j.Node != dead {
				return false
			}
			j.Node = string(owner)
			j.Message = fmt.Sprintf("node %s died; node %s carries on its workflow", dead, owner)
			return true
		})
	}
}

// workflowRunning says whether the stored status of workflow id says running.
func (m *Manager) workflowRunning(id string) bool {
	meta, err := m.deps.Workflows.Stored(id)
	return err == nil && meta.State == workflows.Running
}

// endJob records a job's end unless it has ended already.
func (m *Manager) endJob(id, status, msg string, ae *abi.Error) {
	ctx, cancel := context.WithTimeout(m.deps.Ctx, jobWriteTimeout)
	defer cancel()
	m.updateJob(ctx, id, func(j *Job, _ *[]raftstore.Op) bool {
		if jobEnded(j.Status) {
			return false
		}
		now := time.Now().UTC()
		j.Status, j.Message, j.Error, j.Ended = status, msg, ae, &now
		return true
	})
}

// updateJob changes job id's record with fn, by a write conditional on the record fn saw; it
// reads again and retries when another change came first. fn returns false to change nothing
// (then updateJob returns the record as it is); it may add operations to the same command.
func (m *Manager) updateJob(ctx context.Context, id string, fn func(j *Job, ops *[]raftstore.Op) bool) (*Job, bool, error) {
	for attempt := 0; ; attempt++ {
		old, err := m.deps.Node.KV().Get(jobKey(id))
		if errors.Is(err, raftstore.ErrKeyNotFound) {
			return nil, false, fmt.Errorf("%w: %q", ErrJobNotFound, id)
		} else if err != nil {
			return nil, false, err
		}
		var j Job
		if err := json.Unmarshal(old, &j); err != nil {
			return nil, false, fmt.Errorf("jobs: record of job %s: %w", id, err)
		}
		var ops []raftstore.Op
		if !fn(&j, &ops) {
			return &j, false, nil
		}
		rec, err := json.Marshal(&j)
		if err != nil {
			return nil, false, err
		}
		ops = append(ops, raftstore.Op{Kind: raftstore.OpSet, Key: jobKey(id), Value: rec})
		err = m.deps.Node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: jobKey(id), Value: old}}, Ops: ops})
		if err == nil {
			return &j, true, nil
		}
		if !errors.Is(err, raftstore.ErrConflict) || attempt >= 20 {
			return nil, false, err
		}
		// Another change came first, perhaps not applied here yet.
		if err := m.deps.Node.Linearize(ctx); err != nil {
			return nil, false, err
		}
	}
}

// ensureNamespace records namespace name unless it exists.
func (m *Manager) ensureNamespace(ctx context.Context, name string) error {
	if _, err := m.deps.Node.KV().Get(nsKey(name)); err == nil {
		return nil
	}
	rec, _ := json.Marshal(Namespace{Name: name, Created: time.Now().UTC()})
	err := m.deps.Node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: nsKey(name), Absent: true}},
		Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: nsKey(name), Value: rec}}})
	if errors.Is(err, raftstore.ErrConflict) {
		return nil // created meanwhile, elsewhere
	}
	return err
}

// jobQuota is the quota of a job of namespace ns that asks for q: q's fields within the
// namespace's, the namespace's where q says nothing.
func (m *Manager) jobQuota(ns string, q wire.Quota) (wire.Quota, error) {
	var rec Namespace
	if b, err := m.deps.Node.KV().Get(nsKey(ns)); err == nil {
		json.Unmarshal(b, &rec)
	}
	nq := rec.Quota
	over := func(name string, asked, most float64) error {
		if most <= 0 || (asked > 0 && asked <= most) || asked == 0 {
			return nil
		}
		return &abi.Error{Kind: abi.KindDenied, Message: fmt.Sprintf("quota %s %g is over namespace %s's %g", name, asked, ns, most)}
	}
	if err := errors.Join(over("tasks", float64(q.Tasks), float64(nq.Tasks)), over("waiting", float64(q.Waiting), float64(nq.Waiting)),
		over("submit_rate", q.SubmitRate, nq.SubmitRate), over("submit_burst", float64(q.SubmitBurst), float64(nq.SubmitBurst)),
		over("object_bytes", float64(q.ObjectBytes), float64(nq.ObjectBytes))); err != nil {
		return wire.Quota{}, err
	}
	return q.Or(nq), nil
}

// SetNamespaceQuota sets what each job of namespace name may hold on each node (and the most
// it may ask for), recording the namespace if it is new. Jobs running keep the quota they
// started with.
func (m *Manager) SetNamespaceQuota(ctx context.Context, name string, q wire.Quota) (*Namespace, error) {
	if err := validJobName("namespace", name, MaxNamespaceLen); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	if err := q.Validate(); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	if err := m.ensureNamespace(ctx, name); err != nil {
		return nil, err
	}
	for {
		old, err := m.deps.Node.KV().Get(nsKey(name))
		if err != nil {
			return nil, err
		}
		var rec Namespace
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, fmt.Errorf("jobs: namespace %s: %w", name, err)
		}
		rec.Quota = q
		b, _ := json.Marshal(&rec)
		err = m.deps.Node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: nsKey(name), Value: old}},
			Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: nsKey(name), Value: b}}})
		if errors.Is(err, raftstore.ErrConflict) {
			if err := m.deps.Node.Linearize(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return &rec, nil
	}
}

// SubmitJob validates a job, records it (PENDING) and starts it on this node; it returns the
// record once the job runs (RUNNING). Invalid input is refused before anything is recorded; a
// taken submission id gives ErrJobExists. If ctx expires the record may still commit: read it
// back by its id.
func (m *Manager) Submit(ctx context.Context, spec JobSpec) (*Job, error) {
	if err := spec.Validate(); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	ep := spec.Entrypoint
	job := Job{Namespace: spec.Namespace, Grants: ep.Grants, Status: JobPending, Node: m.deps.NodeID, Boot: m.deps.Boot,
		Submitted: time.Now().UTC(), Metadata: spec.Metadata}
	if job.Namespace == "" {
		job.Namespace = DefaultNamespace
	}
	isWF := len(ep.Module) == 0
	if isWF {
		plan, err := m.deps.Workflows.Check(ep.Workflow)
		if err != nil {
			return nil, err
		}
		job.Kind, job.Entrypoint = JobKindWorkflow, "workflow "+plan.Name
	} else {
		if err := m.deps.Tasks.Check(ctx, ep.Module, ep.Function); err != nil {
			return nil, err
		}
		job.Kind, job.Entrypoint = JobKindTask, ep.Module+"."+ep.Function
	}
	job.ID = spec.SubmissionID
	if job.ID == "" {
		var raw [8]byte
		rand.Read(raw[:])
		job.ID = "job-" + hex.EncodeToString(raw[:])
	}
	if err := m.ensureNamespace(ctx, job.Namespace); err != nil {
		return nil, fmt.Errorf("jobs: record namespace %s: %w", job.Namespace, err)
	}
	q, err := m.jobQuota(job.Namespace, spec.Quota)
	if err != nil {
		return nil, err
	}
	job.Quota = q
	rec, err := json.Marshal(&job)
	if err != nil {
		return nil, err
	}
	err = m.deps.Node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: jobKey(job.ID), Absent: true}},
		Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: jobKey(job.ID), Value: rec}}})
	if errors.Is(err, raftstore.ErrConflict) {
		return nil, fmt.Errorf("%w: a job %q exists already; choose another submission_id", ErrJobExists, job.ID)
	} else if err != nil {
		return nil, fmt.Errorf("jobs: record job %s: %w", job.ID, err)
	}
	if q != (wire.Quota{}) {
		m.deps.SetQuota(job.ID, q)
	}
	// The job is recorded: start it and say so whether or not the client still waits.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobWriteTimeout)
	defer cancel()
	grants := host.Grants{Capabilities: ep.Grants}
	var wfID string
	var h int64
	if isWF {
		wfID, err = m.deps.Workflows.Submit(ctx, ep.Workflow, job.ID, ep.Grants)
	} else {
		// The task's end is recorded after its start, not racing it.
		recorded := make(chan struct{})
		defer close(recorded)
		h, err = m.startTaskJob(ctx, job.ID, ep, grants, recorded)
	}
	if err != nil {
		ae := wire.ABIError(err, "job")
		m.endJob(job.ID, JobFailed, "the job could not start: "+err.Error(), ae)
		return nil, err
	}
	got, changed, err := m.updateJob(ctx, job.ID, func(j *Job, _ *[]raftstore.Op) bool {
		if j.Status != JobPending {
			return false
		}
		now := time.Now().UTC()
		j.Status, j.Started, j.Workflow = JobRunning, &now, wfID
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: record job %s running: %w", job.ID, err)
	}
	if !changed && got.Status == JobStopped {
		// Stopped before it started: release what just started.
		m.cancelRun(job.ID)
		if wfID != "" {
			m.deps.Workflows.Cancel(wfID)
		}
		m.deps.Tasks.Release(job.ID, h)
		m.mu.Lock()
		delete(m.released, job.ID)
		m.mu.Unlock()
		m.releaseJob(job.ID)
	}
	return got, nil
}

// startTaskJob submits a task job's call and follows it in the background until it ends; it
// records the end once recorded is closed.
func (m *Manager) startTaskJob(ctx context.Context, id string, ep JobEntrypoint, grants host.Grants, recorded <-chan struct{}) (int64, error) {
	req := &abi.TaskRequest{Module: ep.Module, Function: ep.Function, Args: ep.Args}
	rctx, cancel := context.WithCancel(m.deps.Ctx)
	j := m
	j.mu.Lock()
	j.running[id] = &jobRun{cancel: cancel}
	j.mu.Unlock()
	h, err := m.deps.Tasks.Submit(ctx, id, req, grants)
	if err != nil {
		cancel()
		j.mu.Lock()
		delete(j.running, id)
		j.mu.Unlock()
		return 0, err
	}
	m.deps.WG.Add(1)
	go func() {
		defer m.deps.WG.Done()
		defer cancel()
		defer func() {
			j.mu.Lock()
			delete(j.running, id)
			j.mu.Unlock()
		}()
		out, err := m.deps.Tasks.Get(rctx, id, h)
		if rctx.Err() != nil {
			// Stopped, ended elsewhere, or the engine closes (a restart fails the job).
			m.deps.Tasks.Cancel(id, h)
			m.deps.Tasks.Release(id, h)
			return
		}
		select {
		case <-recorded:
		case <-rctx.Done():
			m.deps.Tasks.Release(id, h)
			return
		}
		keep := false
		wctx, wcancel := context.WithTimeout(m.deps.Ctx, jobWriteTimeout)
		defer wcancel()
		m.updateJob(wctx, id, func(jb *Job, ops *[]raftstore.Op) bool {
			if jb.Status != JobRunning && jb.Status != JobPending {
				return false
			}
			now := time.Now().UTC()
			jb.Ended = &now
			if jb.Started == nil {
				jb.Started = &now
			}
			if err != nil {
				ae := wire.ABIError(err, "job")
				jb.Status, jb.Message, jb.Error = JobFailed, ae.Message, ae
				return true
			}
			jb.Status, jb.Message = JobSucceeded, ""
			if len(out) <= MaxJobResultBytes {
				*ops = append(*ops, raftstore.Op{Kind: raftstore.OpSet, Key: jobOutKey(id), Value: out})
			} else {
				jb.ResultObject, keep = h, true
				jb.Message = fmt.Sprintf("the result (%d bytes) is object %d of job %s on node %s", len(out), h, id, m.deps.NodeID)
			}
			return true
		})
		if !keep {
			m.deps.Tasks.Release(id, h)
		}
	}()
	return h, nil
}

// runsHere says whether task job id runs on this node.
func (m *Manager) runsHere(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running[id] != nil
}

// cancelRun cancels the task job id running on this node, if any.
func (m *Manager) cancelRun(id string) {
	m.mu.Lock()
	r := m.running[id]
	m.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// releaseJob ends, once, what stopped job id holds on this node: its task, its workflows, its
// actors, its objects (pending tasks cancelled) and its tensors.
func (m *Manager) releaseJob(id string) {
	j := m
	j.mu.Lock()
	done := j.released[id]
	j.released[id] = true
	r := j.running[id]
	j.mu.Unlock()
	if done {
		return
	}
	if r != nil {
		r.cancel()
	}
	m.deps.Workflows.CancelJob(id)
	m.deps.End(id, fmt.Errorf("job %s was stopped", id))
	m.deps.Release(id)
}

// StopJob stops a job: its record says STOPPED at once, and the node running it cancels its
// task or workflow and every node kills its actors and frees its objects and tensors as it
// applies the record. A job that has ended already (its root returned or failed) is marked
// released instead: its status stays, and every node ends what it still holds of it, whether or
// not its root returned. A stopped job gives ErrJobEnded with its record.
func (m *Manager) Stop(ctx context.Context, id string) (*Job, error) {
	if err := m.deps.Node.Linearize(ctx); err != nil {
		return nil, err
	}
	j, changed, err := m.updateJob(ctx, id, func(j *Job, _ *[]raftstore.Op) bool {
		if jobEnded(j.Status) {
			// Its root has returned, but what it started may still hold actors, objects and
			// tensors: every node releases them.
			if j.Released || j.Status == JobStopped {
				return false
			}
			j.Released = true
			return true
		}
		now := time.Now().UTC()
		j.Status, j.Message, j.Ended = JobStopped, "stopped by request", &now
		return true
	})
	if err != nil {
		return nil, err
	}
	if !changed && j.Status == JobStopped {
		return j, fmt.Errorf("%w: job %s is %s", ErrJobEnded, id, j.Status)
	}
	m.releaseJob(id)
	return j, nil
}

// Job reads a job's record linearizably: it sees every change that completed before the call,
// on any node.
func (m *Manager) Get(ctx context.Context, id string) (*Job, error) {
	if err := m.deps.Node.Linearize(ctx); err != nil {
		return nil, err
	}
	return m.localJob(id)
}

func (m *Manager) localJob(id string) (*Job, error) {
	b, err := m.deps.Node.KV().Get(jobKey(id))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	} else if err != nil {
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("jobs: record of job %s: %w", id, err)
	}
	return &j, nil
}

// WaitJob waits until job id has ended (or ctx ends) and returns its record.
func (m *Manager) Wait(ctx context.Context, id string) (*Job, error) {
	seen := m.jobsVer()
	j, err := m.Get(ctx, id)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for err == nil && !jobEnded(j.Status) {
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-t.C:
		}
		// Read the record again only when a job record changed.
		if v := m.jobsVer(); v != seen {
			seen = v
			j, err = m.localJob(id)
		}
	}
	return j, err
}

// JobResult returns a SUCCEEDED job's result: a task's output, or a workflow's. A job that
// has not succeeded gives an error saying why.
func (m *Manager) Result(ctx context.Context, id string) ([]byte, error) {
	j, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Status != JobSucceeded {
		if j.Error != nil {
			return nil, j.Error
		}
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("job %s is %s: it has no result", id, j.Status)}
	}
	if j.Workflow != "" {
		return m.deps.Workflows.StoredResult(j.Workflow)
	}
	if j.ResultObject != 0 {
		if j.Node != m.deps.NodeID {
			return nil, &abi.Error{Kind: abi.KindNotFound, Message: j.Message + ": ask that node"}
		}
		return m.deps.Tasks.Peek(ctx, id, j.ResultObject)
	}
	v, err := m.deps.Node.KV().Get(jobOutKey(id))
	if err != nil {
		return nil, fmt.Errorf("jobs: result of job %s: %w", id, err)
	}
	return v, nil
}

// Jobs lists the jobs that f selects, newest first, linearizably.
func (m *Manager) List(ctx context.Context, f JobFilter) ([]Job, error) {
	if f.Status != "" && !slices.Contains([]string{JobPending, JobRunning, JobSucceeded, JobFailed, JobStopped}, f.Status) {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("status %q: one of PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED", f.Status)}
	}
	out, err := raftstore.Records(ctx, m.deps.Node, jobPrefix, func(j *Job) bool {
		return (f.Namespace == "" || j.Namespace == f.Namespace) && (f.Status == "" || j.Status == f.Status)
	})
	slices.SortFunc(out, func(a, b Job) int {
		if c := b.Submitted.Compare(a.Submitted); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// Namespaces lists the namespaces, by name, linearizably.
func (m *Manager) Namespaces(ctx context.Context) ([]Namespace, error) {
	return raftstore.Records[Namespace](ctx, m.deps.Node, nsPrefix, nil)
}
