// Package client is the Go client of Lumen's REST API, used by the CLI, tests and programs. A
// Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
)

// DefaultURL is where `lumen up` listens unless told otherwise.
const DefaultURL = "http://127.0.0.1:7070"

// Client talks to one Lumen node.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// New returns a client of url with token. Empty values are found as the CLI finds them:
// LUMEN_URL, LUMEN_TOKEN, then DefaultURL and the token file of ./lumen-data.
func New(url, token string) (*Client, error) {
	if url == "" {
		url = os.Getenv("LUMEN_URL")
	}
	if url == "" {
		url = DefaultURL
	}
	if token == "" {
		token = os.Getenv("LUMEN_TOKEN")
	}
	if token == "" {
		dir := os.Getenv("LUMEN_DATA")
		if dir == "" {
			dir = "lumen-data"
		}
		b, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			return nil, fmt.Errorf("no API token: pass --token, set LUMEN_TOKEN, or run where %s/token exists (%v)", dir, err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &Client{URL: strings.TrimRight(url, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// Error is an error answered by the API: Lumen's one error type (kind, message, limit, code)
// with the HTTP status it came with. Branch on Kind (wire.KindNotFound, …), not on Status.
type Error struct {
	Status  int
	Kind    wire.Kind `json:"kind"`
	Message string    `json:"message"`
	Limit   string    `json:"limit,omitempty"`
	Code    string    `json:"code,omitempty"`
}

func (e *Error) Error() string {
	w := wire.Error{Kind: e.Kind, Message: e.Message, Limit: e.Limit}
	return w.Error()
}

// Do sends a request and returns the body of a 2xx answer; any other answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	return c.do(ctx, method, path, body, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr map[string]string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var env wire.Body
		if json.Unmarshal(b, &env) == nil && env.Error.Kind != "" {
			w := env.Error
			return b, resp.StatusCode, &Error{Status: resp.StatusCode, Kind: w.Kind, Message: w.Message, Limit: w.Limit, Code: w.Code}
		}
		return b, resp.StatusCode, &Error{Status: resp.StatusCode, Kind: wire.KindOfStatus(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	return b, resp.StatusCode, nil
}

// JSON sends body (marshalled unless it is []byte) and decodes a 2xx answer into out (if non-nil).
func (c *Client) JSON(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return err
		}
	}
	resp, _, err := c.Do(ctx, method, path, raw)
	if err != nil {
		return err
	}
	if out != nil && len(resp) > 0 {
		return json.Unmarshal(resp, out)
	}
	return nil
}

// Module is a registered module as the API describes it.
type Module struct {
	Digest   string          `json:"digest"`
	Size     int64           `json:"size"`
	Name     string          `json:"name,omitempty"`
	Version  string          `json:"version,omitempty"`
	Names    []string        `json:"names,omitempty"`
	Manifest json.RawMessage `json:"manifest"`
	Created  time.Time       `json:"created"`
}

// PushModule uploads a module with an optional name@version.
func (c *Client) PushModule(ctx context.Context, wasm []byte, name, version string) (*Module, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
		q.Set("version", version)
	}
	var m Module
	err := c.JSON(ctx, "POST", "/v1/modules?"+q.Encode(), wasm, &m)
	return &m, err
}

// Modules lists the registered modules.
func (c *Client) Modules(ctx context.Context) ([]Module, error) {
	var out struct{ Modules []Module }
	err := c.JSON(ctx, "GET", "/v1/modules", nil, &out)
	return out.Modules, err
}

// CallResult is a synchronous call's answer. The output is in one of Output (JSON),
// OutputText (UTF-8 text) or OutputBytes (anything else, sent as base64), the log in Log or
// LogBytes; the *Dropped counts are the bytes the server left out past its inline limit
// (docs/api.md, "Guest bytes in responses").
type CallResult struct {
	Output        json.RawMessage `json:"output,omitempty"`
	OutputText    string          `json:"output_text,omitempty"`
	OutputBytes   []byte          `json:"output_base64,omitempty"`
	OutputDropped int64           `json:"output_dropped_bytes,omitempty"`
	Log           string          `json:"log"`
	LogBytes      []byte          `json:"log_base64,omitempty"`
	LogDropped    int64           `json:"log_dropped_bytes,omitempty"`
	DurationUS    int64           `json:"duration_us"`
}

// Call runs a task function synchronously.
func (c *Client) Call(ctx context.Context, module, function string, input []byte) (*CallResult, error) {
	var out CallResult
	err := c.JSON(ctx, "POST", "/v1/modules/"+url.PathEscape(module)+"/call/"+url.PathEscape(function), input, &out)
	return &out, err
}

// Get waits up to timeout for object ref of job and returns its bytes; an object still not ready
// gives an *Error of kind "not_ready".
func (c *Client) Get(ctx context.Context, job string, ref int64, timeout time.Duration) ([]byte, error) {
	b, code, err := c.Do(ctx, "GET", fmt.Sprintf("/v1/objects/%d?job=%s&timeout_ms=%d", ref, url.QueryEscape(job), timeout.Milliseconds()), nil)
	if err == nil && code == http.StatusAccepted {
		return nil, &Error{Status: code, Kind: wire.KindNotReady, Message: fmt.Sprintf("object %d not ready after %v", ref, timeout)}
	}
	return b, err
}

// Status is the node's state as GET /v1/status reports it.
type Status struct {
	Node      string             `json:"node"`
	Version   string             `json:"version"`
	Uptime    float64            `json:"uptime_seconds"`
	Resources map[string]float64 `json:"resources"`
	Available map[string]float64 `json:"available"`
	Modules   int                `json:"modules"`
	Objects   int                `json:"objects"`
	Bytes     int64              `json:"object_bytes"`
	Actors    int                `json:"actors"`
	Workflows map[string]int     `json:"workflows,omitempty"`
	Tasks     TaskCounts         `json:"tasks"`
	// Cluster is filled by Status from GET /v1/cluster.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// TaskCounts is what a node's task pipeline has done, and how many calls wait for room now.
type TaskCounts struct {
	Ran       int64            `json:"ran"`
	PlacedOut int64            `json:"placed_out"`
	Retried   int64            `json:"retried"`
	ByOrigin  map[string]int64 `json:"by_origin"`
	Queued    int              `json:"queued"`
}

// Status reports the node's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.JSON(ctx, "GET", "/v1/status", nil, &s); err != nil {
		return &s, err
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		return &s, err
	}
	s.Cluster = cl
	return &s, nil
}

// ClusterStatus is the replicated control plane as one node sees it (GET /v1/cluster).
type ClusterStatus struct {
	Node        string          `json:"node"`
	Leader      string          `json:"leader"`
	Term        uint64          `json:"term"`
	CommitIndex uint64          `json:"commit_index"`
	Members     []ClusterMember `json:"members"`
	Nodes       []ClusterNode   `json:"nodes"`
}

// ClusterMember is one node of ClusterStatus.
type ClusterMember struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	API     string `json:"api,omitempty"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitempty"`
	State   string `json:"state,omitempty"`
	Applied uint64 `json:"applied_index"`
	Lag     uint64 `json:"lag"`
	Hash    string `json:"state_hash,omitempty"`
	// Goroutines is the member's goroutine count, for leak checks.
	Goroutines int  `json:"goroutines,omitempty"`
	Worker     bool `json:"worker,omitempty"`
	Dead       bool `json:"dead,omitempty"`
	// TasksRun counts the tasks the member ran; PlacedOut those it placed on other nodes;
	// Retried the placed tasks it ran again after their node failed.
	TasksRun  int64 `json:"tasks_run"`
	PlacedOut int64 `json:"placed_out"`
	Retried   int64 `json:"retried"`
	// Rebuilt counts the objects the member owns that it rebuilt from lineage after the node
	// holding them was lost; PulledBytes the bytes of objects it fetched from other nodes.
	Rebuilt     int64 `json:"rebuilt"`
	PulledBytes int64 `json:"pulled_bytes"`
}

// ClusterNode is a live node's resources in ClusterStatus.
type ClusterNode struct {
	ID        string             `json:"id"`
	API       string             `json:"api"`
	Total     map[string]float64 `json:"total"`
	Available map[string]float64 `json:"available"`
	TasksRun  int64              `json:"tasks_run"`
	SeenAgoMs int64              `json:"seen_ago_ms"`
	Dead      bool               `json:"dead,omitempty"`
}

// Cluster reports the members, the leader, the term, the commit index and each member's lag.
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var s ClusterStatus
	err := c.JSON(ctx, "GET", "/v1/cluster", nil, &s)
	return &s, err
}

// RemoveNode removes a node from the cluster; the node answering must be the leader.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	return c.JSON(ctx, "DELETE", "/v1/cluster/nodes/"+url.PathEscape(id), nil, nil)
}

// KVPut sets key to val in the control plane's key-value store. idempotencyKey, when set, makes
// a retry after an unknown outcome (a timeout, a lost connection) apply at most once.
func (c *Client) KVPut(ctx context.Context, key string, val []byte, idempotencyKey string) error {
	var hdr map[string]string
	if idempotencyKey != "" {
		hdr = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	_, _, err := c.do(ctx, "PUT", "/v1/kv/"+kvPath(key), val, hdr)
	return err
}

// KVGet reads key linearizably; an *Error with Status 404 when it is missing.
func (c *Client) KVGet(ctx context.Context, key string) ([]byte, error) {
	b, _, err := c.do(ctx, "GET", "/v1/kv/"+kvPath(key), nil, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func kvPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// WorkflowStatus is a workflow's state as the API reports it.
type WorkflowStatus struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Job       string          `json:"job"`
	State     string          `json:"state"`
	Error     *Error          `json:"error,omitempty"`
	Submitted time.Time       `json:"submitted"`
	Finished  *time.Time      `json:"finished,omitempty"`
	Resumed   int             `json:"resumed,omitempty"`
	Steps     []StepStatus    `json:"steps"`
	Extra     json.RawMessage `json:"-"`
}

// StepStatus is one step's state.
type StepStatus struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Runs     int    `json:"runs"`
	Items    int    `json:"items,omitempty"`
	ItemsRan int    `json:"items_done,omitempty"`
	Error    *Error `json:"error,omitempty"`
}

// SubmitWorkflow submits a workflow document to run as job with the capabilities granted.
func (c *Client) SubmitWorkflow(ctx context.Context, doc []byte, job string, grants []string) (*WorkflowStatus, error) {
	q := url.Values{}
	if job != "" {
		q.Set("job", job)
	}
	if len(grants) > 0 {
		q.Set("grants", strings.Join(grants, ","))
	}
	var st WorkflowStatus
	err := c.JSON(ctx, "POST", "/v1/workflows?"+q.Encode(), doc, &st)
	return &st, err
}

// Workflow returns a workflow's status.
func (c *Client) Workflow(ctx context.Context, id string) (*WorkflowStatus, error) {
	var st WorkflowStatus
	err := c.JSON(ctx, "GET", "/v1/workflows/"+url.PathEscape(id), nil, &st)
	return &st, err
}

// WorkflowResult waits up to timeout for a workflow to end and returns its output; done is
// false when it is still running.
func (c *Client) WorkflowResult(ctx context.Context, id string, timeout time.Duration) (out []byte, done bool, err error) {
	b, code, err := c.Do(ctx, "GET", fmt.Sprintf("/v1/workflows/%s/result?wait=true&timeout_ms=%d", url.PathEscape(id), max(timeout.Milliseconds(), 1)), nil)
	if err != nil {
		return nil, true, err
	}
	return b, code == 200, nil
}
