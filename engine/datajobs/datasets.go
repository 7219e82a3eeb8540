package datajobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// The engine behind the dataset_* host functions (capability "data", docs/abi.md §3.3): the
// Dataset* methods of Service implement host.Services' methods of the same names.
//
// A guest opens a dataset — a JSON pipeline of package data over the node's data root, checked
// exactly as a data job's is (prepare), or an object holding an Arrow IPC stream — and
// reads it batch by batch: the plan runs in goroutines of its own, and a channel of one batch
// between it and the guest holds it back (with the stages' own queues, a few batches at most are
// in flight). Or it creates a dataset, appends batches it built (each decoded from untrusted IPC
// with data.DecodeIPC and checked against the first batch's schema) and finishes it into an
// object of the call, one IPC stream, which another task can open.
//
// Handles are unique in the process and belong to a job and a Service; the host gives a handle
// only to the call that opened it, calls each method from that call's goroutine, and closes
// what the call leaves open when it ends. So a dataset is used by one goroutine at a time, and
// only the table needs a lock.

// datasetQueue is how many batches wait between a dataset's plan and the guest.
const datasetQueue = 1

// datasetTable holds every open guest dataset of the process.
type datasetTable struct {
	mu   sync.Mutex
	next int64
	m    map[int64]*guestDataset
}

var guestDatasets = &datasetTable{m: map[int64]*guestDataset{}}

type guestDataset struct {
	s    *Service
	job  string
	root string // the data root as the dataset's messages must not show it

	// A dataset read from a plan.
	reading bool
	cancel  context.CancelFunc
	recs    chan arrow.Record // closed by the producer after err is set
	done    chan struct{}     // closed when the producer has returned
	err     error             // why the producer stopped; nil at the end of the data
	first   arrow.Record      // a batch DatasetSchema pulled early, for the next DatasetNext
	ended   bool

	// The schema: a read dataset's once a batch has arrived; a built one's from dataset_create
	// or the first batch.
	schema *arrow.Schema

	// A dataset the guest builds.
	built    []arrow.Record
	bytes    int64
	appended int // batches offered, refused ones included: errors number them from 0
}

func (t *datasetTable) add(g *guestDataset) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	t.m[t.next] = g
	return t.next
}

// get returns dataset h of the call's job on service s.
func (t *datasetTable) get(s *Service, c *host.CallInfo, h int64) (*guestDataset, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.m[h]
	if g == nil || g.s != s || g.job != c.Job {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no dataset %d", h)}
	}
	return g, nil
}

// take removes dataset h of the call's job on service s from the table and returns it.
func (t *datasetTable) take(s *Service, c *host.CallInfo, h int64) (*guestDataset, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.m[h]
	if g == nil || g.s != s || g.job != c.Job {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no dataset %d", h)}
	}
	delete(t.m, h)
	return g, nil
}

// OpenDatasets is how many datasets guests of this service hold open now. Every call's datasets
// are closed when it ends, so on an idle node it is 0.
func (s *Service) OpenDatasets() int {
	t := guestDatasets
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, g := range t.m {
		if g.s == s {
			n++
		}
	}
	return n
}

// datasetSpec is the object form of dataset_open's spec.
type datasetSpec struct {
	Object *int64 `json:"object"`
}

// DatasetOpen implements host.Services.
func (s *Service) DatasetOpen(ctx context.Context, c *host.CallInfo, spec []byte) (int64, error) {
	var keys map[string]json.RawMessage
	if t := bytes.TrimSpace(spec); len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &keys) == nil {
		if _, ok := keys["object"]; ok {
			return s.openObject(ctx, c, t)
		}
	}
	p, err := s.prepare(spec)
	if err != nil {
		if errors.Is(err, ErrNoDataRoot) {
			return 0, &host.StatusError{Status: abi.ErrUnavailable, Message: err.Error()}
		}
		var ae *abi.Error
		if errors.As(err, &ae) { // a link's target is a host path the guest has no business seeing
			if i := strings.Index(ae.Message, " (to "); i >= 0 && strings.HasSuffix(ae.Message, ")") {
				return 0, &abi.Error{Kind: ae.Kind, Message: ae.Message[:i]}
			}
		}
		return 0, err
	}
	root, err := filepath.EvalSymlinks(s.d.DataRoot)
	if err != nil {
		return 0, fmt.Errorf("data root %s: %w", s.d.DataRoot, err)
	}
	tmp, err := s.spillDir()
	if err != nil {
		return 0, err
	}
	grants, limits := s.callGrants(c)
	d, sink, err := p.Build(ctx, data.BuildOptions{
		Root:     root,
		Resolver: &wasmResolver{g: s.d.Guests, job: c.Job, grants: grants, limits: limits},
		Options:  data.Options{MemoryCap: s.memoryCap(), TempDir: tmp, Queue: 1},
	})
	if err != nil {
		kind := abi.KindBadInput
		if errors.Is(err, fs.ErrNotExist) {
			kind = abi.KindNotFound
		}
		return 0, &abi.Error{Kind: kind, Message: hideRoot(err.Error(), root, s.d.DataRoot)}
	}
	if sink != nil {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %d (%s): a dataset to open has no sink step: read its batches instead", sink.Index, sink.Op)}
	}
	return s.startDataset(c, d, root, nil)
}

// openObject opens {"object": h}: an object of the call's job holding an IPC stream.
func (s *Service) openObject(ctx context.Context, c *host.CallInfo, spec []byte) (int64, error) {
	var v datasetSpec
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || dec.More() {
		if err == nil {
			err = errors.New("text after the JSON value")
		}
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf(`spec: want a JSON pipeline or {"object": handle}: %v`, err)}
	}
	if v.Object == nil || *v.Object <= 0 {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: `spec: "object" must be a positive object handle`}
	}
	b, err := s.d.Objects.ObjectGet(ctx, c, *v.Object, -1)
	if err != nil {
		return 0, err
	}
	st, err := data.ParseIPCStream(b)
	if err != nil {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("object %d is not an Arrow IPC stream: %v", *v.Object, err)}
	}
	return s.startDataset(c, st.Dataset().WithOptions(data.Options{Queue: 1}), "", st.Schema())
}

// startDataset runs d for the guest in the background and returns its handle. schema is d's
// when it is known before the first batch.
func (s *Service) startDataset(c *host.CallInfo, d *data.Dataset, root string, schema *arrow.Schema) (int64, error) {
	if err := s.start(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	g := &guestDataset{s: s, job: c.Job, root: root, reading: true, cancel: cancel, schema: schema,
		recs: make(chan arrow.Record, datasetQueue), done: make(chan struct{})}
	go func() {
		defer s.wg.Done()
		defer close(g.done)
		err := d.Iter(ctx, func(rec arrow.Record) error {
			rec.Retain()
			select {
			case g.recs <- rec:
				return nil
			case <-ctx.Done():
				rec.Release()
				return context.Cause(ctx)
			}
		})
		g.err = err
		close(g.recs)
	}()
	return guestDatasets.add(g), nil
}

// pull waits for the dataset's next batch: nil at the end of the data.
func (g *guestDataset) pull(ctx context.Context) (arrow.Record, error) {
	if g.first != nil {
		rec := g.first
		g.first = nil
		return rec, nil
	}
	if g.ended {
		return nil, g.failure()
	}
	select {
	case rec, ok := <-g.recs:
		if ok {
			return rec, nil
		}
		g.ended = true
		return nil, g.failure()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// failure describes why the producer stopped early, as the guest sees it: the execution's error
// as an abi.Error JSON behind abi.ErrFailed, of kind bad_input for a fault of the data (a
// malformed row, a schema that changes between files, a user function's failure) and system
// for the rest. nil when the data simply ended.
func (g *guestDataset) failure() error {
	if g.err == nil {
		return nil
	}
	kind := abi.KindSystem
	for _, s := range []error{data.ErrBadInput, data.ErrSchemaMismatch, data.ErrBadExpr, data.ErrUnsupportedType, data.ErrUDF, data.ErrTooLarge, data.ErrBadPipeline, fs.ErrNotExist} {
		if errors.Is(g.err, s) {
			kind = abi.KindBadInput
			break
		}
	}
	if errors.Is(g.err, context.Canceled) {
		kind = abi.KindCancelled
	}
	b, _ := json.Marshal(&abi.Error{Kind: kind, Message: hideRoot(g.err.Error(), g.root, g.s.d.DataRoot)})
	return &host.StatusError{Status: abi.ErrFailed, Message: string(b)}
}

// stop ends the producer and frees what the dataset holds.
func (g *guestDataset) stop() {
	if g.reading {
		g.cancel()
		for rec := range g.recs {
			rec.Release()
		}
		<-g.done
		if g.first != nil {
			g.first.Release()
			g.first = nil
		}
	}
	for _, rec := range g.built {
		rec.Release()
	}
	g.built = nil
}

// DatasetNext implements host.Services.
func (s *Service) DatasetNext(ctx context.Context, c *host.CallInfo, h int64) ([]byte, error) {
	g, err := guestDatasets.get(s, c, h)
	if err != nil {
		return nil, err
	}
	if !g.reading {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("dataset %d is being built: finish it, then open the object to read it", h)}
	}
	var rec arrow.Record
	err = s.blocking(c, func() (err error) {
		rec, err = g.pull(ctx)
		return err
	})
	if err != nil || rec == nil {
		return nil, err
	}
	defer rec.Release()
	if g.schema == nil {
		g.schema = rec.Schema()
	}
	return data.EncodeIPC(rec)
}

// DatasetSchema implements host.Services. A dataset read from a plan knows its schema when its
// first batch arrives, so the first call may wait for it (and keeps it for DatasetNext).
func (s *Service) DatasetSchema(ctx context.Context, c *host.CallInfo, h int64) ([]byte, error) {
	g, err := guestDatasets.get(s, c, h)
	if err != nil {
		return nil, err
	}
	if g.reading && g.schema == nil {
		if g.first == nil && !g.ended {
			err := s.blocking(c, func() (err error) {
				g.first, err = g.pull(ctx)
				return err
			})
			if err != nil {
				return nil, err
			}
		}
		if g.first != nil {
			g.schema = g.first.Schema()
		}
	}
	if g.schema == nil {
		what := "it produced no batch"
		if !g.reading {
			what = "dataset_create named none and nothing was appended"
		}
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("dataset %d has no schema yet: %s", h, what)}
	}
	return data.EncodeIPCSchema(g.schema)
}

// DatasetCreate implements host.Services.
func (s *Service) DatasetCreate(_ context.Context, c *host.CallInfo, schema []byte) (int64, error) {
	g := &guestDataset{s: s, job: c.Job}
	if schema != nil {
		sc, err := data.DecodeIPCSchema(schema)
		if err != nil {
			return 0, &host.StatusError{Status: abi.ErrBadPayload, Message: "schema: " + err.Error()}
		}
		g.schema = sc
	}
	return guestDatasets.add(g), nil
}

// DatasetAppend implements host.Services. A refused batch leaves the dataset as it was.
func (s *Service) DatasetAppend(_ context.Context, c *host.CallInfo, h int64, batch []byte) error {
	g, err := guestDatasets.get(s, c, h)
	if err != nil {
		return err
	}
	if g.reading {
		return &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("dataset %d was opened to be read, not built: create one with dataset_create", h)}
	}
	n := g.appended
	g.appended++
	if capB := s.d.ObjectStoreBytes; g.bytes+int64(len(batch)) > capB {
		return &host.StatusError{Status: abi.ErrLimit, Message: fmt.Sprintf("batch %d: dataset %d would hold %d bytes, over the %d-byte cap", n, h, g.bytes+int64(len(batch)), capB)}
	}
	rec, err := data.DecodeIPC(batch, nil)
	if err != nil {
		return &host.StatusError{Status: abi.ErrBadPayload, Message: fmt.Sprintf("batch %d: %v", n, err)}
	}
	if g.schema == nil {
		g.schema = rec.Schema()
	} else if err := data.CheckSchema(g.schema, rec.Schema()); err != nil {
		rec.Release()
		return &host.StatusError{Status: abi.ErrBadPayload, Message: fmt.Sprintf("batch %d: %v", n, err)}
	}
	g.built = append(g.built, rec)
	g.bytes += int64(len(batch))
	return nil
}

// DatasetFinish implements host.Services.
func (s *Service) DatasetFinish(ctx context.Context, c *host.CallInfo, h int64) (int64, error) {
	g, err := guestDatasets.take(s, c, h)
	if err != nil {
		return 0, err
	}
	defer g.stop()
	if g.reading {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("dataset %d was opened to be read, not built; it is closed", h)}
	}
	if g.schema == nil {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("dataset %d has no schema: dataset_create named none and no batch was appended", h)}
	}
	b, err := data.EncodeIPCStream(g.schema, g.built)
	if err != nil {
		return 0, err
	}
	return s.d.Objects.ObjectPut(ctx, c, b)
}

// DatasetWrite implements host.Services. sink is one step, {"write_parquet": "/out/x"} (or
// write_csv, write_jsonl; the path may also be {"path": "/out/x"}), whose path is a guest path
// inside a writable directory the job grants; the host has checked the call has fs. The files
// are written as a data job's are (part-NNNNN files, each complete or absent) and named in the
// result as the guest sees them.
func (s *Service) DatasetWrite(ctx context.Context, c *host.CallInfo, h int64, sink []byte) ([]byte, error) {
	g, err := guestDatasets.get(s, c, h)
	if err != nil {
		return nil, err
	}
	op, gpath, err := parseSink(sink)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "sink: " + err.Error()}
	}
	grants, _ := s.callGrants(c)
	dir, toGuest, err := writableDir(grants.Dirs, gpath)
	if err != nil {
		return nil, err
	}
	var d *data.Dataset
	if g.reading {
		d = data.FromPull(fmt.Sprintf("dataset %d", h), func(ctx context.Context) (arrow.Record, error) {
			rec, err := g.pull(ctx)
			if rec != nil && g.schema == nil {
				g.schema = rec.Schema()
			}
			return rec, err
		})
	} else {
		if len(g.built) == 0 {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("dataset %d holds no batch to write", h)}
		}
		d = data.FromRecords(g.built)
	}
	d = d.WithOptions(data.Options{Queue: 1})
	var res data.WriteResult
	err = s.blocking(c, func() (err error) {
		switch op {
		case "write_parquet":
			res, err = d.WriteParquet(ctx, dir)
		case "write_csv":
			res, err = d.WriteCSV(ctx, dir)
		default:
			res, err = d.WriteJSONL(ctx, dir)
		}
		return err
	})
	for i, f := range res.Files {
		res.Files[i] = toGuest(f)
	}
	if err != nil {
		var se *host.StatusError
		if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err // the plan's own failure, or the call's end
		}
		kind := abi.KindSystem
		if errors.Is(err, data.ErrBadInput) || errors.Is(err, data.ErrSchemaMismatch) || errors.Is(err, data.ErrUnsupportedType) {
			kind = abi.KindBadInput
		}
		msg := strings.ReplaceAll(err.Error(), dir, gpath)
		b, _ := json.Marshal(&abi.Error{Kind: kind, Message: fmt.Sprintf("%s %s: %s (files written: %v)", op, gpath, msg, res.Files)})
		return nil, &host.StatusError{Status: abi.ErrFailed, Message: string(b)}
	}
	if res.Files == nil {
		res.Files = []string{}
	}
	return json.Marshal(res)
}

// sinkOps are the steps dataset_write takes.
var sinkOps = map[string]bool{"write_parquet": true, "write_csv": true, "write_jsonl": true}

// parseSink reads {"write_parquet": "/out/x"} or {"write_csv": {"path": "/out/x"}}.
func parseSink(b []byte) (op, gpath string, err error) {
	var m map[string]json.RawMessage
	if err := strictSinkJSON(b, &m); err != nil {
		return "", "", fmt.Errorf(`want {"write_parquet" | "write_csv" | "write_jsonl": "/guest/path"}: %v`, err)
	}
	if len(m) != 1 {
		return "", "", fmt.Errorf("want one step, got %d keys", len(m))
	}
	for k, v := range m {
		op = k
		if !sinkOps[op] {
			return "", "", fmt.Errorf("%q is not write_parquet, write_csv or write_jsonl", op)
		}
		if len(v) > 0 && v[0] == '{' {
			var a struct {
				Path string `json:"path"`
			}
			if err := strictSinkJSON(v, &a); err != nil {
				return "", "", fmt.Errorf("%s: %v", op, err)
			}
			gpath = a.Path
		} else if err := strictSinkJSON(v, &gpath); err != nil {
			return "", "", fmt.Errorf("%s: %v", op, err)
		}
	}
	return op, gpath, nil
}

func strictSinkJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("text after the JSON value")
	}
	return nil
}

// writableDir finds the writable directory grant that holds guest path gpath and returns the
// host folder it names, checked like a data job's paths (no .., no link out of the grant), and a
// function that names a host file under it as the guest sees it.
func writableDir(dirs []host.DirGrant, gpath string) (string, func(string) string, error) {
	if !path.IsAbs(gpath) || path.Clean(gpath) != gpath {
		return "", nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("sink path %q is not a clean absolute guest path such as /out/results", gpath)}
	}
	best := -1
	for i, d := range dirs {
		gp := d.GuestPath
		if gpath == gp || gp == "/" || strings.HasPrefix(gpath, gp+"/") {
			if best < 0 || len(gp) > len(dirs[best].GuestPath) {
				best = i
			}
		}
	}
	if best < 0 {
		return "", nil, &abi.Error{Kind: abi.KindDenied, Message: fmt.Sprintf("sink path %q is in no directory the job grants", gpath)}
	}
	d := dirs[best]
	if !d.Writable {
		return "", nil, &abi.Error{Kind: abi.KindDenied, Message: fmt.Sprintf("sink path %q: the directory %s is granted read-only", gpath, d.GuestPath)}
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(gpath, d.GuestPath), "/")
	if rel == "" {
		rel = "."
	}
	if err := CheckPaths(d.HostPath, []string{filepath.FromSlash(rel)}); err != nil {
		return "", nil, &abi.Error{Kind: abi.KindDenied, Message: fmt.Sprintf("sink path %q leads outside the directory granted at %s", gpath, d.GuestPath)}
	}
	root, err := filepath.EvalSymlinks(d.HostPath)
	if err != nil {
		return "", nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("the directory granted at %s is missing", d.GuestPath)}
	}
	toGuest := func(f string) string {
		if r, err := filepath.Rel(root, f); err == nil && filepath.IsLocal(r) {
			return path.Join(d.GuestPath, filepath.ToSlash(r))
		}
		return f
	}
	return filepath.Join(root, filepath.FromSlash(rel)), toGuest, nil
}

// DatasetClose implements host.Services.
func (s *Service) DatasetClose(_ context.Context, c *host.CallInfo, h int64) error {
	g, err := guestDatasets.take(s, c, h)
	if err != nil {
		return err
	}
	g.stop()
	return nil
}

// callGrants returns the grants and limits call c runs under.
func (s *Service) callGrants(c *host.CallInfo) (host.Grants, host.Limits) {
	if s.d.CallGrants == nil {
		return host.Grants{}, host.Limits{}
	}
	return s.d.CallGrants(c)
}

// blocking runs wait for call c with the call's resources given back (Deps.Blocking).
func (s *Service) blocking(c *host.CallInfo, wait func() error) error {
	if s.d.Blocking == nil {
		return wait()
	}
	return s.d.Blocking(c, wait)
}

// hideRoot writes paths under the data root as the pipeline names them, relative to it.
func hideRoot(msg string, roots ...string) string {
	for _, r := range roots {
		if r != "" {
			msg = strings.ReplaceAll(msg, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator), "")
		}
	}
	return msg
}
