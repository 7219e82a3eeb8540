package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// grantable are the capabilities a client may grant over the API. Directory and environment
// grants name host paths and values, so only an operator's configuration may give them.
var grantable = map[abi.Capability]bool{
	abi.CapObjects: true, abi.CapTasks: true, abi.CapActors: true, abi.CapClock: true, abi.CapRandom: true, abi.CapTensors: true,
	abi.CapModel: true, abi.CapData: true,
}

// taskBody is POST /v1/tasks: a task request, its job and what it is granted.
type taskBody struct {
	abi.TaskRequest
	Job    string           `json:"job,omitempty"`
	Grants []abi.Capability `json:"grants,omitempty"`
	// PlacementGroup and BundleIndex run the task in a bundle of a placement group.
	PlacementGroup string `json:"placement_group,omitempty"`
	BundleIndex    *int   `json:"bundle_index,omitempty"`
}

// actorBody is POST /v1/actors.
type actorBody struct {
	abi.ActorCreateRequest
	Job    string           `json:"job,omitempty"`
	Grants []abi.Capability `json:"grants,omitempty"`
}

// waitBody is POST /v1/wait.
type waitBody struct {
	abi.WaitRequest
	Job string `json:"job,omitempty"`
}

// grantsOf checks the capabilities a client grants, answering the error itself.
func grantsOf(c *gin.Context, caps []abi.Capability) (host.Grants, bool) {
	for _, cp := range caps {
		if !grantable[cp] {
			fail(c, wire.KindBadInput, fmt.Sprintf("capability %q cannot be granted over the API (grantable: objects, tasks, actors, clock, random, tensors, model, data)", cp))
			return host.Grants{}, false
		}
	}
	return host.Grants{Capabilities: caps}, true
}

// body reads a request body of at most limit bytes, answering the error itself. A body whose
// length is declared is read into one buffer of that size.
func body(c *gin.Context, limit int64) ([]byte, bool) {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	var b []byte
	var err error
	if n := c.Request.ContentLength; n > 0 && n <= limit {
		b = make([]byte, n)
		_, err = io.ReadFull(r, b)
	} else {
		b, err = io.ReadAll(r)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		fail(c, wire.KindTimeout, "the request body did not arrive within the server's body timeout")
		return nil, false
	}
	if err != nil {
		failErr(c, err, nil)
		return nil, false
	}
	return b, true
}

// viaABI passes a request decoded from a client's body through the ABI's strict decoder, so that
// clients outside WASM and guests are held to the same rules, answering the error itself.
func viaABI[T any](c *gin.Context, req any, decode func([]byte) (*T, error)) (*T, bool) {
	raw, err := json.Marshal(req)
	if err == nil {
		var out *T
		if out, err = decode(raw); err == nil {
			return out, true
		}
	}
	fail(c, wire.KindBadInput, err.Error())
	return nil, false
}

// readJSON decodes a capped JSON body strictly into v, answering the error itself.
func (s *Server) readJSON(c *gin.Context, v any) bool {
	b, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return false
	}
	if err := decodeOne(b, v); err != nil {
		fail(c, wire.KindBadInput, "request body: "+err.Error())
		return false
	}
	return true
}

// jsonBody reads a capped body that must be one JSON value, for handlers that hand the bytes on
// (jobs, workflows, data pipelines), answering the error itself; what names the body in it.
func (s *Server) jsonBody(c *gin.Context, what string) ([]byte, bool) {
	b, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return nil, false
	}
	if err := decodeOne(b, nil); err != nil {
		fail(c, wire.KindBadInput, what+": "+err.Error())
		return nil, false
	}
	return b, true
}

// decodeOne decodes b, which must hold exactly one JSON value (white space around it aside),
// strictly into v (unknown fields refused); a nil v only checks b.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if v == nil {
		v = new(json.RawMessage)
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value, which ends at byte %d of %d: a body holds one JSON value", end, len(b))
	}
	return nil
}

// timeoutMs reads ?timeout_ms=, def when absent, answering a bad value itself. zeroOK allows 0
// (do not wait).
func timeoutMs(c *gin.Context, def time.Duration, zeroOK bool) (time.Duration, bool) {
	t := c.Query("timeout_ms")
	if t == "" {
		return def, true
	}
	ms, err := strconv.ParseInt(t, 10, 64)
	if err != nil || ms < 0 || (ms == 0 && !zeroOK) {
		want := "a positive integer"
		if zeroOK {
			want = "a non-negative integer"
		}
		fail(c, wire.KindBadInput, "timeout_ms must be "+want)
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

func handleParam(c *gin.Context, name string) (int64, bool) {
	h, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || h <= 0 {
		fail(c, wire.KindBadInput, fmt.Sprintf("%s %q is not a positive integer", name, c.Param(name)))
		return 0, false
	}
	return h, true
}

// tasksAPI starts and cancels tasks.
type tasksAPI struct{ *Server }

func (s tasksAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/tasks", s.submitTask)
	v1.DELETE("/tasks/:ref", s.cancelTask)
}

func (s tasksAPI) submitTask(c *gin.Context) {
	var b taskBody
	if !s.readJSON(c, &b) {
		return
	}
	req, ok := viaABI(c, b.TaskRequest, abi.DecodeTaskRequest)
	if !ok {
		return
	}
	grants, ok := grantsOf(c, b.Grants)
	if !ok {
		return
	}
	var h int64
	var err error
	if b.PlacementGroup != "" || b.BundleIndex != nil {
		if b.PlacementGroup == "" || b.BundleIndex == nil {
			fail(c, wire.KindBadInput, "placement_group and bundle_index go together")
			return
		}
		h, err = s.eng.Tasks().InGroup(c.Request.Context(), b.Job, req, grants, b.PlacementGroup, *b.BundleIndex, nil)
	} else {
		h, err = s.eng.Tasks().Submit(c.Request.Context(), b.Job, req, grants)
	}
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": wire.JobOr(b.Job)})
}

func (s tasksAPI) cancelTask(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.eng.Tasks().Cancel(c.Query("job"), h); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}

// objectsAPI serves the object store.
type objectsAPI struct{ *Server }

func (s objectsAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/objects", s.putObject)
	v1.GET("/objects/:ref", s.getObject)
	v1.GET("/objects/:ref/meta", s.objectMeta)
	v1.DELETE("/objects/:ref", s.deleteObject)
	v1.POST("/wait", s.wait)
}

func (s objectsAPI) putObject(c *gin.Context) {
	b, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	h, err := s.eng.Objects().Put(c.Query("job"), b)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": wire.JobOr(c.Query("job"))})
}

// getObject answers an object's bytes as they are (application/octet-stream), waiting for it up
// to ?timeout_ms= (default 30 s). Its checksum and refs are GET /v1/objects/{ref}/meta's.
func (s objectsAPI) getObject(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	timeout, ok := timeoutMs(c, 30*time.Second, true)
	if !ok {
		return
	}
	b, err := s.eng.Objects().Get(c.Request.Context(), c.Query("job"), h, timeout)
	if err != nil {
		objectError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

// objectMeta answers GET /v1/objects/{ref}/meta: the object's size, checksum and the objects its
// value refers to, once it is ready (202 before, up to ?timeout_ms=), without its bytes.
func (s objectsAPI) objectMeta(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	timeout, ok := timeoutMs(c, 30*time.Second, true)
	if !ok {
		return
	}
	meta, err := s.eng.Objects().Meta(c.Request.Context(), c.Query("job"), h, timeout)
	if err != nil {
		objectError(c, err)
		return
	}
	c.JSON(http.StatusOK, meta)
}

// objectError answers a failed get: 202 when the object is not ready yet.
func objectError(c *gin.Context, err error) {
	var se *host.StatusError
	if errors.As(err, &se) && se.Status == abi.ErrTimeout {
		fail(c, wire.KindNotReady, se.Message)
		return
	}
	failErr(c, err, nil)
}

func (s objectsAPI) deleteObject(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.eng.Objects().Release(c.Query("job"), h); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s objectsAPI) wait(c *gin.Context) {
	var b waitBody
	if !s.readJSON(c, &b) {
		return
	}
	req, ok := viaABI(c, b.WaitRequest, abi.DecodeWaitRequest)
	if !ok {
		return
	}
	res, err := s.eng.Objects().Wait(c.Request.Context(), b.Job, req)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, res)
}

// actorsAPI creates, finds, calls and kills actors.
type actorsAPI struct{ *Server }

func (s actorsAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/actors", s.createActor)
	v1.GET("/actors", s.findActor)
	v1.POST("/actors/:actor/call/:method", s.callActor)
	v1.DELETE("/actors/:actor", s.killActor)
}

func (s actorsAPI) createActor(c *gin.Context) {
	var b actorBody
	if !s.readJSON(c, &b) {
		return
	}
	req, ok := viaABI(c, b.ActorCreateRequest, abi.DecodeActorCreateRequest)
	if !ok {
		return
	}
	grants, ok := grantsOf(c, b.Grants)
	if !ok {
		return
	}
	h, err := s.eng.Actors().Create(c.Request.Context(), b.Job, req, grants)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"actor": h, "job": wire.JobOr(b.Job)})
}

// findActor answers GET /v1/actors?namespace=&name=: a named actor's handle and job. Without a
// name it lists the cluster's actor records (of ?job= when given).
func (s actorsAPI) findActor(c *gin.Context) {
	name := c.Query("name")
	if name == "" {
		if c.Query("namespace") != "" {
			fail(c, wire.KindBadInput, "namespace without name: name the actor to find")
			return
		}
		recs, err := s.eng.Actors().List(c.Request.Context(), c.Query("job"))
		if err != nil {
			failErr(c, err, nil)
			return
		}
		c.JSON(http.StatusOK, gin.H{"actors": recs})
		return
	}
	id, job, err := s.eng.Actors().Named(c.Query("namespace"), name)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"actor": id, "job": job})
}

func (s actorsAPI) callActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	in, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	h, err := s.eng.Actors().Call(c.Query("job"), id, c.Param("method"), in)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": wire.JobOr(c.Query("job"))})
}

func (s actorsAPI) killActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	if err := s.eng.Actors().Kill(c.Query("job"), id); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}
