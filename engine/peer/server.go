package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine/wire"
)

// Handler is what a node does for its peers; package engine implements it. Every message it
// receives has passed its Check. An error it returns is answered through Config.Classify; an
// *wire.Error is answered as it is.
type Handler interface {
	// SubmitPlaced runs a task another node placed here and returns its result's handle here.
	SubmitPlaced(ctx context.Context, t *wire.PlacedTask) (wire.Submitted, error)
	// CancelTask cancels the task whose result is object ref of job.
	CancelTask(ctx context.Context, job string, ref int64) error
	// ObjectMeta waits up to wait for object ref of job and describes it; a value not ready in
	// time is a *wire.Error of kind wire.KindNotReady.
	ObjectMeta(ctx context.Context, job string, ref int64, wait time.Duration) (wire.ObjectMeta, error)
	// ObjectValue is ObjectMeta with the value.
	ObjectValue(ctx context.Context, job string, ref int64, wait time.Duration) (wire.ObjectValue, error)
	// ReleaseObject drops the reference a peer held on object ref of job.
	ReleaseObject(ctx context.Context, job string, ref int64) error
	// CreateActor creates an actor its owner placed here and returns its handle here.
	CreateActor(ctx context.Context, a *wire.PlacedActor) (wire.CreatedActor, error)
	// CallActor queues a forwarded call on actor id here and returns its result's handle.
	CallActor(ctx context.Context, id int64, c *wire.ActorCall) (wire.Submitted, error)
	// KillActor ends actor id here (only if k.Owner placed it, when set).
	KillActor(ctx context.Context, id int64, k *wire.ActorKill) error
	// Join adds a node to the cluster (on the leader) and returns the secrets it must share.
	Join(ctx context.Context, j *wire.JoinRequest) (wire.JoinResponse, error)
	// Apply applies a raft command a follower forwarded (on the leader).
	Apply(ctx context.Context, cmd []byte) error
	// ReadIndex returns the leader's read index.
	ReadIndex(ctx context.Context) (uint64, error)
	// Self reports this node's state.
	Self(ctx context.Context) wire.NodeStatus
	// Heartbeat records a node's heartbeat (on the leader) and returns the live nodes.
	Heartbeat(ctx context.Context, hb *wire.Heartbeat) ([]wire.NodeView, error)
	// ModuleBytes returns the bytes of module digest that this node holds, without asking any
	// other node for them; a *wire.Error of kind wire.KindNotFound when it holds none.
	ModuleBytes(ctx context.Context, digest string) ([]byte, error)
	// KeepModuleBytes keeps a copy of module digest's bytes, which the server has checked
	// against the digest: the node that took the upload asks this before the module's record
	// commits, so that its bytes are on two nodes.
	KeepModuleBytes(ctx context.Context, digest string, wasm []byte) error
}

// Config configures the peer routes.
type Config struct {
	// Credential is the cluster's node credential (Credential of its join token). Required.
	Credential string
	// Classify gives an error the handler returned its kind: the API's one error mapping
	// (default: the kind wire.KindOf finds, else internal).
	Classify func(error) *wire.Error
	// MaxBodyBytes caps a JSON message (default 16 MiB); MaxCommandBytes a forwarded raft
	// command (default 80 MiB: a module's record and its bytes, when a registry kept them in
	// the log, with room to spare); MaxModuleBytes a module's bytes sent to be kept (default
	// 1 GiB, the registry's largest cap).
	MaxBodyBytes, MaxCommandBytes, MaxModuleBytes int64
}

// server serves the peer routes.
type server struct {
	h   Handler
	cfg Config
}

// Mount registers the peer routes on r under Prefix. It panics without a credential: a node
// that cannot tell its peers apart from anyone must not serve them.
func Mount(r gin.IRouter, h Handler, cfg Config) {
	if len(cfg.Credential) < 32 {
		panic("peer: Mount without a node credential")
	}
	if cfg.Classify == nil {
		cfg.Classify = defaultClassify
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxCommandBytes <= 0 {
		cfg.MaxCommandBytes = 80 << 20
	}
	if cfg.MaxModuleBytes <= 0 {
		cfg.MaxModuleBytes = 1 << 30
	}
	s := &server{h: h, cfg: cfg}
	g := r.Group(Prefix, s.version, s.auth)
	g.POST("/tasks", s.submitTask)
	g.DELETE("/tasks/:ref", s.cancelTask)
	g.GET("/objects/:ref", s.objectValue)
	g.GET("/objects/:ref/meta", s.objectMeta)
	g.DELETE("/objects/:ref", s.releaseObject)
	g.POST("/actors", s.createActor)
	g.POST("/actors/:actor/call", s.callActor)
	g.POST("/actors/:actor/kill", s.killActor)
	g.POST("/cluster/join", s.join)
	g.POST("/cluster/apply", s.apply)
	g.GET("/cluster/readindex", s.readIndex)
	g.GET("/cluster/self", s.self)
	g.POST("/cluster/heartbeat", s.heartbeat)
	g.GET("/modules/:digest", s.moduleBytes)
	g.PUT("/modules/:digest", s.keepModuleBytes)
}

func defaultClassify(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	k, ok := wire.KindOf(err)
	if !ok {
		k = wire.KindInternal
	}
	return &wire.Error{Kind: k, Message: err.Error()}
}

func (s *server) version(c *gin.Context) { c.Header(VersionHeader, wire.Version) }

// auth admits a request that carries the node credential and, when the connection is TLS, a
// client certificate the cluster's CA signed.
func (s *server) auth(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		failWith(c, wire.New(wire.KindUnauthorized, "missing node credential (Authorization: Bearer <the cluster's node credential>): the peer routes serve the cluster's nodes only"))
	case subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Credential)) != 1:
		failWith(c, wire.New(wire.KindForbidden, "wrong node credential: the peer routes admit the cluster's nodes only (a node derives its credential from the join token; API tokens do not serve here)"))
	case c.Request.TLS != nil && len(c.Request.TLS.VerifiedChains) == 0:
		failWith(c, wire.New(wire.KindForbidden, "node-to-node requests need a client certificate signed by the cluster's CA"))
	default:
		c.Next()
	}
}

func failWith(c *gin.Context, e *wire.Error) {
	c.AbortWithStatusJSON(e.Kind.Status(), wire.Body{Error: *e})
}

func (s *server) fail(c *gin.Context, err error) { failWith(c, s.cfg.Classify(err)) }

// Message is a peer message the server parses: it checks itself once decoded.
type Message interface{ Check() error }

// readBody reads a capped body, answering the error itself (413 past the cap).
func readBody(c *gin.Context, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			failWith(c, wire.Errorf(wire.KindTooLarge, "a peer message has at most %d bytes", limit))
		} else {
			failWith(c, wire.Errorf(wire.KindBadInput, "reading the request: %v", err))
		}
		return nil, false
	}
	return b, true
}

// Decode reads one peer message from b strictly (no unknown fields, nothing after it) and checks
// it. A version of the protocol fixes its messages' fields: a field this node does not know is a
// sender of another version, refused rather than half understood.
func Decode(b []byte, v Message) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return wire.Errorf(wire.KindBadInput, "peer message: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF { // dec.More would let a closing '}' or ']' through
		return wire.New(wire.KindBadInput, "peer message: data after the message")
	}
	return v.Check()
}

// read decodes the request's message into v, answering the error itself.
func (s *server) read(c *gin.Context, v Message) bool {
	b, ok := readBody(c, s.cfg.MaxBodyBytes)
	if !ok {
		return false
	}
	if err := Decode(b, v); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

func handleParam(c *gin.Context, name string) (int64, bool) {
	h, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || h <= 0 {
		failWith(c, wire.Errorf(wire.KindBadInput, "%s %q is not a positive integer", name, c.Param(name)))
		return 0, false
	}
	return h, true
}

// waitParam reads ?wait_ms= (default 0: do not wait), answering a bad value itself.
func waitParam(c *gin.Context) (time.Duration, bool) {
	v := c.Query("wait_ms")
	if v == "" {
		return 0, true
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 || ms > int64(time.Hour/time.Millisecond) {
		failWith(c, wire.New(wire.KindBadInput, "wait_ms must be an integer from 0 to 3600000"))
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

func (s *server) submitTask(c *gin.Context) {
	var t wire.PlacedTask
	if !s.read(c, &t) {
		return
	}
	out, err := s.h.SubmitPlaced(c.Request.Context(), &t)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (s *server) cancelTask(c *gin.Context) {
	ref, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.h.CancelTask(c.Request.Context(), c.Query("job"), ref); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *server) objectMeta(c *gin.Context) {
	ref, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	wait, ok := waitParam(c)
	if !ok {
		return
	}
	m, err := s.h.ObjectMeta(c.Request.Context(), c.Query("job"), ref, wait)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

// objectValue answers the value as the body, its checksum and refs in wire's headers.
func (s *server) objectValue(c *gin.Context) {
	ref, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	wait, ok := waitParam(c)
	if !ok {
		return
	}
	v, err := s.h.ObjectValue(c.Request.Context(), c.Query("job"), ref, wait)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header(wire.ChecksumHeader, v.Meta.Checksum)
	if refs := wire.FormatRefs(v.Meta.Refs); refs != "" {
		c.Header(wire.RefsHeader, refs)
	}
	c.Data(http.StatusOK, "application/octet-stream", v.Value)
}

func (s *server) releaseObject(c *gin.Context) {
	ref, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.h.ReleaseObject(c.Request.Context(), c.Query("job"), ref); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *server) createActor(c *gin.Context) {
	var a wire.PlacedActor
	if !s.read(c, &a) {
		return
	}
	out, err := s.h.CreateActor(c.Request.Context(), &a)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (s *server) callActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	var call wire.ActorCall
	if !s.read(c, &call) {
		return
	}
	out, err := s.h.CallActor(c.Request.Context(), id, &call)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (s *server) killActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	var k wire.ActorKill
	if !s.read(c, &k) {
		return
	}
	if err := s.h.KillActor(c.Request.Context(), id, &k); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *server) join(c *gin.Context) {
	var j wire.JoinRequest
	if !s.read(c, &j) {
		return
	}
	out, err := s.h.Join(c.Request.Context(), &j)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// apply takes the raft command as the raw body: it is raftstore's own versioned encoding, and may
// carry a module's bytes.
func (s *server) apply(c *gin.Context) {
	cmd, ok := readBody(c, s.cfg.MaxCommandBytes)
	if !ok {
		return
	}
	if len(cmd) == 0 {
		failWith(c, wire.New(wire.KindBadInput, "an empty command"))
		return
	}
	if err := s.h.Apply(c.Request.Context(), cmd); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *server) readIndex(c *gin.Context) {
	idx, err := s.h.ReadIndex(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.ReadIndex{Index: idx})
}

func (s *server) self(c *gin.Context) { c.JSON(http.StatusOK, s.h.Self(c.Request.Context())) }

func (s *server) heartbeat(c *gin.Context) {
	var hb wire.Heartbeat
	if !s.read(c, &hb) {
		return
	}
	view, err := s.h.Heartbeat(c.Request.Context(), &hb)
	if err != nil {
		s.fail(c, err)
		return
	}
	if view == nil {
		view = []wire.NodeView{}
	}
	c.JSON(http.StatusOK, view)
}

// digestParam reads the :digest of a modules route, answering a malformed one itself.
func digestParam(c *gin.Context) (string, bool) {
	d := c.Param("digest")
	if err := CheckDigest(d); err != nil {
		failWith(c, wire.New(wire.KindBadInput, err.Error()))
		return "", false
	}
	return d, true
}

// moduleBytes answers the module's bytes as the body; the client checks them against the digest.
func (s *server) moduleBytes(c *gin.Context) {
	d, ok := digestParam(c)
	if !ok {
		return
	}
	b, err := s.h.ModuleBytes(c.Request.Context(), d)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/wasm", b)
}

// keepModuleBytes takes a module's bytes as the raw body and keeps them once they hash to the
// digest of the path.
func (s *server) keepModuleBytes(c *gin.Context) {
	d, ok := digestParam(c)
	if !ok {
		return
	}
	b, ok := readBody(c, s.cfg.MaxModuleBytes)
	if !ok {
		return
	}
	if err := checkBytes(d, b); err != nil {
		failWith(c, wire.New(wire.KindBadInput, err.Error()))
		return
	}
	if err := s.h.KeepModuleBytes(c.Request.Context(), d, b); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
