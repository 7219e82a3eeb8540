package engine

import (
	"context"
	"path/filepath"

	"github.com/lumenflow/lumen/engine/datajobs"
	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Data jobs and the guests' datasets live in engine/datajobs; the engine opens the service
// (newDataJobs) over its registry, runtime, objects and calls, hands its dataset_* methods to
// the host (services), and runs a workflow's pipeline step with it.

// newDataJobs opens the node's data jobs. The registry and the runtime it reaches through
// dataGuests are set later in Open, before any pipeline can run.
func (e *Engine) newDataJobs() *datajobs.Service {
	storeBytes := e.cfg.ObjectStoreBytes
	if storeBytes <= 0 {
		storeBytes = DefaultObjectStoreBytes
	}
	return datajobs.New(datajobs.Deps{
		Context:          e.ctx,
		DataRoot:         e.cfg.DataRoot,
		SpillDir:         filepath.Join(e.cfg.DataDir, "data-tmp"),
		ObjectStoreBytes: storeBytes,
		Guests:           dataGuests{e},
		Objects:          services{e},
		CallGrants: func(c *host.CallInfo) (host.Grants, host.Limits) {
			cc := callCtx(c)
			return cc.Grants, cc.Limits
		},
		Blocking: e.blocking,
	})
}

// DataJobs returns the node's data jobs: pipelines run in the background over Config.DataRoot
// (docs/data.md), and the engine behind the guests' datasets.
func (e *Engine) DataJobs() *datajobs.Service { return e.data }

// runPipelineStep runs a workflow's pipeline step as a data job of the workflow's job and
// grants, named in the step's status (datajobs.Service.RunStep).
func (e *Engine) runPipelineStep(ctx context.Context, c workflows.Call, outputs map[string][]byte, started func(dataJob string)) ([]byte, error) {
	return e.data.RunStep(ctx, c.Step, outputs, c.Job, host.Grants{Capabilities: c.Grants}, started)
}

// dataGuests is datajobs.Guests over the engine's registry and runtime.
type dataGuests struct{ e *Engine }

func (g dataGuests) Manifest(ref string) (string, abi.Manifest, error) {
	m, err := g.e.reg.Resolve(ref)
	if err != nil {
		return "", abi.Manifest{}, err
	}
	return m.Ref(), m.Manifest, nil
}

func (g dataGuests) Module(ctx context.Context, ref, function string, kind abi.FuncKind) (*host.Module, error) {
	fr, err := g.e.Modules().function(ctx, ref, function, kind)
	return fr.Module, err
}

// NewInstance starts an instance whose calls' work (objects, tasks, actors) has a callContext of
// its own, which end gives up before closing the instance.
func (g dataGuests) NewInstance(ctx context.Context, spec host.InstanceSpec) (*host.Instance, func() error, error) {
	cc := &callContext{Grants: spec.Grants, Limits: spec.Limits}
	spec.Context = cc
	inst, err := g.e.rt.NewInstance(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	return inst, func() error {
		g.e.endScope(cc, nil, nil, false)
		return inst.Close(context.Background())
	}, nil
}

// The dataset_* host functions of host.Services.

func (s services) DatasetOpen(ctx context.Context, c *host.CallInfo, spec []byte) (int64, error) {
	return s.e.data.DatasetOpen(ctx, c, spec)
}

func (s services) DatasetNext(ctx context.Context, c *host.CallInfo, h int64) ([]byte, error) {
	return s.e.data.DatasetNext(ctx, c, h)
}

func (s services) DatasetSchema(ctx context.Context, c *host.CallInfo, h int64) ([]byte, error) {
	return s.e.data.DatasetSchema(ctx, c, h)
}

func (s services) DatasetCreate(ctx context.Context, c *host.CallInfo, schema []byte) (int64, error) {
	return s.e.data.DatasetCreate(ctx, c, schema)
}

func (s services) DatasetAppend(ctx context.Context, c *host.CallInfo, h int64, batch []byte) error {
	return s.e.data.DatasetAppend(ctx, c, h, batch)
}

func (s services) DatasetFinish(ctx context.Context, c *host.CallInfo, h int64) (int64, error) {
	return s.e.data.DatasetFinish(ctx, c, h)
}

func (s services) DatasetWrite(ctx context.Context, c *host.CallInfo, h int64, sink []byte) ([]byte, error) {
	return s.e.data.DatasetWrite(ctx, c, h, sink)
}

func (s services) DatasetClose(ctx context.Context, c *host.CallInfo, h int64) error {
	return s.e.data.DatasetClose(ctx, c, h)
}
