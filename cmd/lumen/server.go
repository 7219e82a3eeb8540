package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/scheduler"
)

const serverUsage = `Usage: lumen server --id ID --data DIR --raft ADDR --http ADDR [flags]

Starts one node of a replicated control plane (3 or 5 make it survive the loss of a minority).
The first node bootstraps a cluster and writes its join token to DIR/join-token; the others
join it with --join URL --join-token TOKEN. A node restarted with the same --id and --data
rejoins by itself.

`

const workerUsage = `Usage: lumen worker --join URL --join-token TOKEN --id ID --data DIR --raft ADDR --http ADDR [flags]

Starts a worker: a sandboxed host that joins the cluster as a non-voting member. It receives the
control plane's state (modules included) without taking part in elections, heartbeats its
resources to the leader, and runs the tasks placed on it.

`

// serverCommand is `lumen server`.
func serverCommand(args []string) error { return nodeCommand("server", args) }

// workerCommand is `lumen worker`.
func workerCommand(args []string) error { return nodeCommand("worker", args) }

func nodeCommand(kind string, args []string) error {
	fl := flag.NewFlagSet(kind, flag.ContinueOnError)
	fl.Usage = func() {
		if kind == "worker" {
			fmt.Fprint(fl.Output(), workerUsage)
		} else {
			fmt.Fprint(fl.Output(), serverUsage)
		}
		fl.PrintDefaults()
	}
	id := fl.String("id", "", "this node's id, stable across restarts (required)")
	data := fl.String("data", "", "data directory (required)")
	raftAddr := fl.String("raft", "", "address raft listens on, e.g. 10.0.0.1:7000 (required)")
	advertise := fl.String("raft-advertise", "", "address other nodes dial for raft (default --raft)")
	httpAddr := fl.String("http", "127.0.0.1:7070", "address of the REST API")
	apiURL := fl.String("api-url", "", "URL other nodes reach this node's API at (default from --http)")
	join := fl.String("join", "", "API URL of a member to join (omit on the first node)")
	token := fl.String("join-token", os.Getenv("LUMEN_JOIN_TOKEN"), "the cluster's join token (default $LUMEN_JOIN_TOKEN)")
	examples := fl.String("examples", "", "load the built examples under this directory")
	var tf tlsFiles
	fl.StringVar(&tf.cert, "tls-cert", "", "this node's certificate (PEM): turns on mutual TLS between nodes and HTTPS for the API")
	fl.StringVar(&tf.key, "tls-key", "", "the certificate's private key (PEM)")
	fl.StringVar(&tf.ca, "tls-ca", "", "the CA that signs every node's certificate (PEM)")
	heartbeat := fl.Duration("heartbeat", 0, "raft heartbeat and election timeout (default 500ms)")
	beat := fl.Duration("heartbeat-interval", 0, "how often the node reports its resources to the leader (default 1s)")
	deadAfter := fl.Duration("dead-after", 0, "silence after which the leader declares a node dead (default 10s)")
	resources := fl.String("resources", "", "resources the node offers, e.g. cpu=4,memory_bytes=8e9,gpu=1,custom=2 (default: its cores and memory)")
	sf := addServingFlags(fl)
	if err := fl.Parse(args); err != nil {
		return err
	}
	switch {
	case *id == "" || *data == "" || *raftAddr == "":
		fl.Usage()
		return errors.New("--id, --data and --raft are required")
	case *join != "" && *token == "":
		return errors.New("--join needs --join-token (the first node keeps it in its data directory, file join-token)")
	case kind == "worker" && *join == "":
		return errors.New("a worker needs --join URL: the API of a server of the cluster")
	}
	res, err := parseResources(*resources)
	if err != nil {
		return err
	}
	o := nodeOptions{data: *data, http: *httpAddr, examples: *examples, resources: res, cluster: engine.ClusterConfig{
		NodeID: *id, RaftBind: *raftAddr, RaftAdvertise: *advertise, APIURL: *apiURL, Worker: kind == "worker",
		Join: *join, JoinToken: *token, HeartbeatTimeout: *heartbeat, ElectionTimeout: *heartbeat,
		HeartbeatInterval: *beat, DeadAfter: *deadAfter,
	}}
	if err := sf.apply(&o); err != nil {
		return err
	}
	if tf != (tlsFiles{}) {
		if tf.cert == "" || tf.key == "" || tf.ca == "" {
			return errors.New("mutual TLS needs --tls-cert, --tls-key and --tls-ca together")
		}
		o.tls = &tf
	}
	return serve(o)
}

// parseResources reads "name=amount,…"; empty gives nil (the engine's default).
func parseResources(s string) (scheduler.Resources, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := scheduler.Resources{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || k == "" || err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("--resources: %q is not name=amount (a non-negative number)", kv)
		}
		out[k] = f
	}
	return out, nil
}

// tlsFiles name a node's certificate, key and the cluster's CA.
type tlsFiles struct{ cert, key, ca string }

// load builds the server side (which requires and checks a peer certificate signed by the CA)
// and the client side (which presents this node's certificate and trusts only the CA).
func (t *tlsFiles) load() (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return nil, nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
	}
	pem, err := os.ReadFile(t.ca)
	if err != nil {
		return nil, nil, fmt.Errorf("read --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", t.ca)
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		RootCAs: pool, MinVersion: tls.VersionTLS13,
	}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	return server, client, nil
}

// apiTLS is the API server's TLS: the node's certificate; a client certificate is checked when
// given (nodes give theirs) but not required, since users authenticate with bearer tokens.
func apiTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	a := c.Clone()
	a.ClientAuth = tls.VerifyClientCertIfGiven
	return a
}

// clusterCommand is `lumen cluster remove ID`.
func clusterCommand(args []string) error {
	if len(args) == 0 || args[0] != "remove" {
		return errors.New("usage: lumen cluster remove ID")
	}
	var cf clientFlags
	fl := flag.NewFlagSet("cluster remove", flag.ContinueOnError)
	cf.register(fl)
	if err := fl.Parse(reorder(args[1:])); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return errors.New("usage: lumen cluster remove ID")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.RemoveNode(ctx, fl.Arg(0)); err != nil {
		return err
	}
	fmt.Printf("node %s removed\n", strings.TrimSpace(fl.Arg(0)))
	return nil
}
