// Command lumen is Lumen's single binary: `lumen up` starts the single-node engine with its REST
// API and dashboard on one port.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/plugins"
)

const usage = `lumen — tasks, actors and workflows of sandboxed WebAssembly

Usage:
  lumen up [--data DIR] [--http ADDR] [--examples DIR]   start the single-node engine
  lumen server --id ID --data DIR --raft ADDR --http ADDR [--join URL --join-token T]
                                                         start a node of a replicated cluster
  lumen worker --join URL --join-token T --id ID --data DIR --raft ADDR --http ADDR [--resources cpu=4,gpu=1]
                                                         start a worker that runs tasks placed on it
  lumen cluster remove ID                                remove a node from the cluster
  lumen module push FILE [--name N --version V]          upload a module
  lumen module ls                                        list modules
  lumen call MODULE FUNCTION [INPUT | -]                 run a task function and print its output
  lumen status                                           the node's resources, modules, objects, actors
  lumen run WORKFLOW.json [--follow] [--grant caps]      submit a workflow; --follow shows progress and its output
  lumen job submit|list|status|stop                      jobs: a workflow or a task function, recorded cluster-wide
  lumen new --lang go|rust|c|assemblyscript NAME         scaffold a task module in folder NAME
  lumen bench [--json] [--quick] [--only name,name]      Ray's microbenchmark figures beside same-run baselines
  lumen model train --out DIR [--size tiny|small]        train the multimodal model that --model DIR serves

Client commands take --url, --token (or LUMEN_URL, LUMEN_TOKEN; the token of ./lumen-data is
found by itself) and --json.

Run "lumen up -h" or "lumen server -h" for their flags; docs/cluster.md explains clusters.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "server":
		err = serverCommand(os.Args[2:])
	case "cluster":
		err = clusterCommand(os.Args[2:])
	case "worker":
		err = workerCommand(os.Args[2:])
	case "module":
		err = moduleCommand(os.Args[2:])
	case "call":
		err = callCommand(os.Args[2:])
	case "status":
		err = statusCommand(os.Args[2:])
	case "run":
		err = runCommand(os.Args[2:])
	case "job":
		err = jobCommand(os.Args[2:])
	case "new":
		err = newCommand(os.Args[2:])
	case "bench":
		err = benchCommand(os.Args[2:])
	case "model":
		err = modelCommand(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "lumen: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lumen:", err)
		os.Exit(1)
	}
}

func up(args []string) error {
	fl := flag.NewFlagSet("up", flag.ContinueOnError)
	data := fl.String("data", "./lumen-data", "data directory: control-plane state, compilation cache, API tokens")
	addr := fl.String("http", "127.0.0.1:7070", "address of the REST API and dashboard")
	examples := fl.String("examples", "", "load the built examples under this directory")
	sf := addServingFlags(fl)
	if err := fl.Parse(args); err != nil {
		return err
	}
	o := nodeOptions{data: *data, http: *addr, examples: *examples}
	if err := sf.apply(&o); err != nil {
		return err
	}
	return serve(o)
}

// servingFlags are the flags every node that serves takes beside its own: the model it serves
// (model.go), the folder data jobs may use (data.go) and the API listener's limits (httpflags.go).
type servingFlags struct {
	model    *modelFlags
	dataRoot *string
	http     httpFlags
	pressure pressureFlags
}

func addServingFlags(fl *flag.FlagSet) servingFlags {
	return servingFlags{model: addModelFlags(fl), dataRoot: addDataRootFlag(fl), http: addHTTPFlags(fl), pressure: addPressureFlags(fl)}
}

// apply checks the parsed flags and sets them in o.
func (sf servingFlags) apply(o *nodeOptions) error {
	mc, err := sf.model.config()
	if err != nil {
		return err
	}
	root, err := dataRoot(*sf.dataRoot)
	if err != nil {
		return err
	}
	ac, err := sf.http.config()
	if err != nil {
		return err
	}
	o.model, o.dataRoot, o.api = mc, root, ac
	return sf.pressure.apply(&o.engine)
}

// nodeOptions are what `lumen up` and `lumen server` start a node with.
type nodeOptions struct {
	data, http, examples string
	cluster              engine.ClusterConfig
	resources            scheduler.Resources
	tls                  *tlsFiles
	model                serving.Config // the OpenAI-compatible API's models (model.go)
	dataRoot             string         // the folder data jobs may use (data.go)
	api                  api.Config     // the API's limits (httpflags.go)
	engine               engine.Config  // the quotas and the node's bounds (pressureflags.go)
}

// serve opens the engine, loads the examples, and serves the API until SIGINT or SIGTERM.
func serve(o nodeOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return err
	}
	defer ln.Close()
	scheme := "http"
	var serverTLS *tls.Config
	if o.tls != nil {
		var clientTLS *tls.Config
		if serverTLS, clientTLS, err = o.tls.load(); err != nil {
			return err
		}
		scheme = "https"
		o.cluster.TLS = serverTLS
		o.cluster.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	}
	url := scheme + "://" + ln.Addr().String()
	if o.cluster.RaftBind != "" && o.cluster.APIURL == "" {
		o.cluster.APIURL = url
	}
	cfg := o.engine
	cfg.DataDir, cfg.Cluster, cfg.Resources, cfg.Model, cfg.DataRoot = o.data, o.cluster, o.resources, o.model, o.dataRoot
	eng, err := engine.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	if o.examples != "" {
		if err := loadExamples(ctx, eng, o.examples); err != nil {
			return err
		}
	}
	srv, err := api.New(eng, o.api)
	if err != nil {
		return err
	}
	defer srv.Close() // before the engine's: batches stop, to resume at the next start
	hs := srv.HTTPServer(apiTLS(serverTLS))
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if o.cluster.RaftBind != "" {
		fmt.Printf("Lumen node %s is up (raft %s).\n", o.cluster.NodeID, o.cluster.RaftBind)
	} else {
		fmt.Printf("Lumen is up.\n")
	}
	fmt.Printf("  API:       %s/v1\n  Dashboard: %s/?token=%s\n  Token:     %s\n  Data:      %s\nStop with Ctrl-C.\n",
		url, url, srv.AdminToken(), filepath.Join(eng.DataDir(), api.AdminTokenFile), eng.DataDir())
	if serverTLS != nil {
		err = hs.ServeTLS(ln, "", "")
	} else {
		err = hs.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// exampleSpec is an example's lumen.json: how its guest is registered.
type exampleSpec struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description"`
}

// loadExamples registers every example whose guest has been built (make run builds them):
// DIR/<example>/lumen.json names it, DIR/<example>/build/guest.wasm is its module.
func loadExamples(ctx context.Context, eng *engine.Engine, dir string) error {
	specs, err := filepath.Glob(filepath.Join(dir, "*", "lumen.json"))
	if err != nil {
		return err
	}
	for _, path := range specs {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var spec exampleSpec
		if err := json.Unmarshal(b, &spec); err != nil {
			return fmt.Errorf("example %s: %w", path, err)
		}
		wasmPath := filepath.Join(filepath.Dir(path), "build", "guest.wasm")
		wasm, err := os.ReadFile(wasmPath)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Printf("example %s: %s is not built (make guests builds it); skipped\n", spec.Name, wasmPath)
			continue
		} else if err != nil {
			return err
		}
		opts := plugins.AddOptions{Name: spec.Name, Version: spec.Version, Description: spec.Description}
		m, err := eng.Modules().Add(ctx, wasm, opts)
		if errors.Is(err, plugins.ErrConflict) {
			// Versions are immutable: a changed build of the example keeps only its digest.
			fmt.Printf("example %s: %s@%s already names another build; registering this one by digest only\n", spec.Name, spec.Name, spec.Version)
			opts.Name, opts.Version = "", ""
			m, err = eng.Modules().Add(ctx, wasm, opts)
		}
		if err != nil {
			return fmt.Errorf("example %s: %w", spec.Name, err)
		}
		fmt.Printf("example %s@%s loaded (%s)\n", spec.Name, spec.Version, m.Digest[:19])
	}
	return nil
}
