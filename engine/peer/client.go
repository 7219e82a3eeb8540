package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
)

// Client calls other nodes' peer routes with the cluster's node credential. Each method takes the
// peer's API URL (its member record's) and returns, on failure, either the peer's answer as a
// *wire.Error (its verdict: the caller branches on the kind) or an error wrapping ErrUnreachable,
// ErrVersion or ErrBadAnswer (no verdict: the node failed). It is safe for concurrent use.
type Client struct {
	hc   *http.Client
	cred string
	// MaxValueBytes caps an object value fetched from a peer (default 1 GiB).
	MaxValueBytes int64
}

// maxAnswerBytes caps a JSON answer (a heartbeat's view of every node is the largest).
const maxAnswerBytes = 16 << 20

// NewClient returns a client that sends requests through hc (nil: http.DefaultClient) with
// credential (Credential of the cluster's join token).
func NewClient(hc *http.Client, credential string) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{hc: hc, cred: credential, MaxValueBytes: 1 << 30}
}

// SubmitTask places t on the node at api.
func (c *Client) SubmitTask(ctx context.Context, api string, t *wire.PlacedTask) (wire.Submitted, error) {
	var out wire.Submitted
	return out, c.call(ctx, http.MethodPost, api, "/tasks", nil, t, &out)
}

// CancelTask cancels the task whose result is object ref of job on the node at api.
func (c *Client) CancelTask(ctx context.Context, api, job string, ref int64) error {
	return c.call(ctx, http.MethodDelete, api, "/tasks/"+strconv.FormatInt(ref, 10), url.Values{"job": {job}}, nil, nil)
}

// ObjectMeta waits up to wait on the node at api for object ref of job and describes it; not
// ready in time is a *wire.Error of kind wire.KindNotReady.
func (c *Client) ObjectMeta(ctx context.Context, api, job string, ref int64, wait time.Duration) (wire.ObjectMeta, error) {
	var out wire.ObjectMeta
	return out, c.call(ctx, http.MethodGet, api, objectPath(ref)+"/meta", waitQuery(job, wait), nil, &out)
}

// ReleaseObject drops this node's reference to object ref of job on the node at api.
func (c *Client) ReleaseObject(ctx context.Context, api, job string, ref int64) error {
	return c.call(ctx, http.MethodDelete, api, objectPath(ref), url.Values{"job": {job}}, nil, nil)
}

// Object waits up to wait on the node at api for object ref of job and returns its value, checked
// against the checksum the node sends and, when size >= 0, against that size. A value over
// MaxValueBytes is a *wire.Error of kind wire.KindTooLarge.
func (c *Client) Object(ctx context.Context, api, job string, ref int64, wait time.Duration, size int64) (wire.ObjectValue, error) {
	resp, err := c.do(ctx, http.MethodGet, api, objectPath(ref), waitQuery(job, wait), nil, "")
	if err != nil {
		return wire.ObjectValue{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wire.ObjectValue{}, answerError(api, resp)
	}
	n := resp.ContentLength
	if size >= 0 && n >= 0 && n != size {
		return wire.ObjectValue{}, fmt.Errorf("%w: %s sends %d bytes for object %d, which holds %d", ErrBadAnswer, api, n, ref, size)
	}
	if n > c.MaxValueBytes {
		return wire.ObjectValue{}, wire.Errorf(wire.KindTooLarge, "object %d on %s has %d bytes, over %d", ref, api, n, c.MaxValueBytes)
	}
	var data []byte
	if n >= 0 {
		data = make([]byte, n)
		_, err = io.ReadFull(resp.Body, data)
	} else {
		data, err = io.ReadAll(io.LimitReader(resp.Body, c.MaxValueBytes+1))
	}
	if err != nil {
		return wire.ObjectValue{}, fmt.Errorf("%w: reading object %d from %s: %v", ErrUnreachable, ref, api, err)
	}
	if int64(len(data)) > c.MaxValueBytes {
		return wire.ObjectValue{}, wire.Errorf(wire.KindTooLarge, "object %d on %s is over %d bytes", ref, api, c.MaxValueBytes)
	}
	sum := Checksum(data)
	if sent := resp.Header.Get(wire.ChecksumHeader); sent != sum {
		return wire.ObjectValue{}, fmt.Errorf("%w: object %d from %s: checksum %s of the bytes received, %q sent", ErrBadAnswer, ref, api, sum, sent)
	}
	refs, err := wire.ParseRefs(resp.Header.Get(wire.RefsHeader))
	if err != nil {
		return wire.ObjectValue{}, fmt.Errorf("%w: object %d from %s: %v", ErrBadAnswer, ref, api, err)
	}
	return wire.ObjectValue{Value: data, Meta: wire.ObjectMeta{Size: int64(len(data)), Checksum: sum, Refs: refs}}, nil
}

// CreateActor creates a on the node at api.
func (c *Client) CreateActor(ctx context.Context, api string, a *wire.PlacedActor) (wire.CreatedActor, error) {
	var out wire.CreatedActor
	return out, c.call(ctx, http.MethodPost, api, "/actors", nil, a, &out)
}

// CallActor forwards call to actor id on the node at api.
func (c *Client) CallActor(ctx context.Context, api string, id int64, call *wire.ActorCall) (wire.Submitted, error) {
	var out wire.Submitted
	return out, c.call(ctx, http.MethodPost, api, "/actors/"+strconv.FormatInt(id, 10)+"/call", nil, call, &out)
}

// KillActor ends actor id on the node at api.
func (c *Client) KillActor(ctx context.Context, api string, id int64, k *wire.ActorKill) error {
	return c.call(ctx, http.MethodPost, api, "/actors/"+strconv.FormatInt(id, 10)+"/kill", nil, k, nil)
}

// Join asks the node at api to add a node to the cluster. A follower answers a *wire.Error of kind
// wire.KindNotLeader whose LeaderAPI says where to ask.
func (c *Client) Join(ctx context.Context, api string, j *wire.JoinRequest) (wire.JoinResponse, error) {
	var out wire.JoinResponse
	return out, c.call(ctx, http.MethodPost, api, "/cluster/join", nil, j, &out)
}

// Apply forwards an encoded raft command to the leader at api.
func (c *Client) Apply(ctx context.Context, api string, cmd []byte) error {
	return c.call(ctx, http.MethodPost, api, "/cluster/apply", nil, rawBody(cmd), nil)
}

// ReadIndex asks the leader at api for its read index.
func (c *Client) ReadIndex(ctx context.Context, api string) (uint64, error) {
	var out wire.ReadIndex
	err := c.call(ctx, http.MethodGet, api, "/cluster/readindex", nil, nil, &out)
	return out.Index, err
}

// Self asks the node at api for its state.
func (c *Client) Self(ctx context.Context, api string) (wire.NodeStatus, error) {
	var out wire.NodeStatus
	return out, c.call(ctx, http.MethodGet, api, "/cluster/self", nil, nil, &out)
}

// Heartbeat sends hb to the leader at api and returns its view of the live nodes.
func (c *Client) Heartbeat(ctx context.Context, api string, hb *wire.Heartbeat) ([]wire.NodeView, error) {
	var out []wire.NodeView
	return out, c.call(ctx, http.MethodPost, api, "/cluster/heartbeat", nil, hb, &out)
}

// ModuleBytes fetches the bytes of module digest from the node at api, up to max bytes, and
// checks them against the digest: bytes that do not hash to it are an error wrapping
// ErrBadAnswer (the caller asks another node). A node that holds none answers a *wire.Error of
// kind wire.KindNotFound.
func (c *Client) ModuleBytes(ctx context.Context, api, digest string, max int64) ([]byte, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodGet, api, modulePath(digest), nil, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(api, resp)
	}
	if resp.ContentLength > max {
		return nil, wire.Errorf(wire.KindTooLarge, "module %s on %s has %d bytes, over %d", digest, api, resp.ContentLength, max)
	}
	var data []byte
	if n := resp.ContentLength; n >= 0 {
		data = make([]byte, n)
		_, err = io.ReadFull(resp.Body, data)
	} else {
		data, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading module %s from %s: %v", ErrUnreachable, digest, api, err)
	}
	if int64(len(data)) > max {
		return nil, wire.Errorf(wire.KindTooLarge, "module %s on %s is over %d bytes", digest, api, max)
	}
	if err := checkBytes(digest, data); err != nil {
		return nil, fmt.Errorf("%w: %s sent module bytes that do not match their digest, refused: %v", ErrBadAnswer, api, err)
	}
	return data, nil
}

// KeepModuleBytes sends the bytes of module digest to the node at api, which keeps a copy once
// they hash to the digest.
func (c *Client) KeepModuleBytes(ctx context.Context, api, digest string, wasm []byte) error {
	if err := CheckDigest(digest); err != nil {
		return err
	}
	return c.call(ctx, http.MethodPut, api, modulePath(digest), nil, rawBody(wasm), nil)
}

func modulePath(digest string) string { return "/modules/" + digest }

// CheckDigest checks that d is "sha256:" and 64 lowercase hex digits.
func CheckDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("peer: module digest %q is not sha256: followed by 64 lowercase hex digits", truncate([]byte(d), 80))
	}
	return nil
}

// checkBytes checks that b hashes to digest.
func checkBytes(digest string, b []byte) error {
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("%d bytes hash to %s, not %s", len(b), got, digest)
	}
	return nil
}

// rawBody is a body sent as it is (application/octet-stream), not as JSON.
type rawBody []byte

func objectPath(ref int64) string { return "/objects/" + strconv.FormatInt(ref, 10) }

func waitQuery(job string, wait time.Duration) url.Values {
	return url.Values{"job": {job}, "wait_ms": {strconv.FormatInt(wait.Milliseconds(), 10)}}
}

// call sends in (JSON, a rawBody or nothing) and decodes a 2xx answer into out (nil: ignore it).
func (c *Client) call(ctx context.Context, method, api, path string, q url.Values, in, out any) error {
	var body []byte
	ctype := ""
	switch v := in.(type) {
	case nil:
	case rawBody:
		body, ctype = v, "application/octet-stream"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("peer: encode %s: %w", path, err)
		}
		body, ctype = b, "application/json"
	}
	resp, err := c.do(ctx, method, api, path, q, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
		return answerError(api, resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading %s's answer: %v", ErrUnreachable, api, err)
	}
	if len(b) > maxAnswerBytes {
		return fmt.Errorf("%w: %s answered %s with over %d bytes", ErrBadAnswer, api, path, maxAnswerBytes)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s answered %s with %q: %v", ErrBadAnswer, api, path, truncate(b, 200), err)
	}
	return nil
}

// do sends one request and returns an answer that speaks this protocol version.
func (c *Client) do(ctx context.Context, method, api, path string, q url.Values, body []byte, ctype string) (*http.Response, error) {
	u := strings.TrimRight(api, "/") + Prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("peer: %s %s: %w", method, u, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cred)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, u, err)
	}
	if v := resp.Header.Get(VersionHeader); v != wire.Version {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		if v == "" {
			v = "none"
		}
		return nil, fmt.Errorf("%w: %s %s answered %d speaking version %s: %s", ErrVersion, method, u, resp.StatusCode, v, truncate(b, 200))
	}
	return resp, nil
}

// answerError reads a peer's error answer: its wire.Body, or an error of the kind its status
// implies when the body is not one.
func answerError(api string, resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: reading %s's answer: %v", ErrUnreachable, api, err)
	}
	var body wire.Body
	if json.Unmarshal(b, &body) == nil && body.Error.Kind != "" {
		return &body.Error
	}
	k := wire.KindOfStatus(resp.StatusCode)
	if resp.StatusCode == http.StatusAccepted {
		k = wire.KindNotReady
	}
	return &wire.Error{Kind: k, Message: fmt.Sprintf("%s answered %d: %s", api, resp.StatusCode, truncate(b, 200))}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C (Castagnoli) of b in hex: the value of wire.ChecksumHeader.
func Checksum(b []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// IsAnswer says whether err is a peer's verdict (a *wire.Error it answered), as opposed to a
// failure to get one; it returns the verdict.
func IsAnswer(err error) (*wire.Error, bool) {
	var we *wire.Error
	if errors.As(err, &we) {
		return we, true
	}
	return nil, false
}
