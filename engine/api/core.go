package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// grantable are the capabilities a client may grant over the API. Directory and environment
// grants name host paths and values, so only an operator's configuration may give them.
var grantable = map[abi.Capability]bool{
	abi.CapObjects: true, abi.CapTasks: true, abi.CapActors: true, abi.CapClock: true, abi.CapRandom: true, abi.CapTensors: true,
}

// taskBody is POST /v1/tasks: a task request, its job and what it is granted.
type taskBody struct {
	abi.TaskRequest
	Job    string           `json:"job,omitempty"`
	Grants []abi.Capability `json:"grants,omitempty"`
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

func grantsOf(caps []abi.Capability) (host.Grants, error) {
	for _, c := range caps {
		if !grantable[c] {
			return host.Grants{}, fmt.Errorf("capability %q cannot be granted over the API (grantable: objects, tasks, actors, clock, random)", c)
		}
	}
	return host.Grants{Capabilities: caps}, nil
}

// readJSON decodes a capped JSON body strictly into v, answering the error itself.
func (s *Server) readJSON(c *gin.Context, v any) bool {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		failErr(c, err, nil)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(c, http.StatusBadRequest, "bad_input", "request body: "+err.Error())
		return false
	}
	return true
}

func handleParam(c *gin.Context, name string) (int64, bool) {
	h, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || h <= 0 {
		fail(c, http.StatusBadRequest, "bad_input", fmt.Sprintf("%s %q is not a positive integer", name, c.Param(name)))
		return 0, false
	}
	return h, true
}

func (s *Server) submitTask(c *gin.Context) {
	var body taskBody
	if !s.readJSON(c, &body) {
		return
	}
	// Validate through the same decoder guests go through.
	raw, _ := json.Marshal(body.TaskRequest)
	req, err := abi.DecodeTaskRequest(raw)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	grants, err := grantsOf(body.Grants)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	h, err := s.eng.Submit(c.Request.Context(), body.Job, req, grants)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": jobOr(body.Job)})
}

func jobOr(j string) string {
	if j == "" {
		return "default"
	}
	return j
}

func (s *Server) cancelTask(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.eng.Cancel(c.Query("job"), h); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) putObject(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	h, err := s.eng.Put(c.Query("job"), b)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": jobOr(c.Query("job"))})
}

// getObject answers an object's bytes as they are (application/octet-stream), waiting for it up
// to ?timeout_ms= (default 30 s).
func (s *Server) getObject(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	timeout := 30 * time.Second
	if t := c.Query("timeout_ms"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			fail(c, http.StatusBadRequest, "bad_input", "timeout_ms must be a non-negative integer")
			return
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	b, err := s.eng.Get(c.Request.Context(), c.Query("job"), h, timeout)
	if err != nil {
		var se *host.StatusError
		if errors.As(err, &se) && se.Status == abi.ErrTimeout {
			fail(c, http.StatusAccepted, "not_ready", se.Message)
			return
		}
		failErr(c, err, nil)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", b)
}

func (s *Server) deleteObject(c *gin.Context) {
	h, ok := handleParam(c, "ref")
	if !ok {
		return
	}
	if err := s.eng.Release(c.Query("job"), h); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) wait(c *gin.Context) {
	var body waitBody
	if !s.readJSON(c, &body) {
		return
	}
	raw, _ := json.Marshal(body.WaitRequest)
	req, err := abi.DecodeWaitRequest(raw)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	res, err := s.eng.Wait(c.Request.Context(), body.Job, req)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) createActor(c *gin.Context) {
	var body actorBody
	if !s.readJSON(c, &body) {
		return
	}
	raw, _ := json.Marshal(body.ActorCreateRequest)
	req, err := abi.DecodeActorCreateRequest(raw)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	grants, err := grantsOf(body.Grants)
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	h, err := s.eng.CreateActor(c.Request.Context(), body.Job, req, grants)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"actor": h, "job": jobOr(body.Job)})
}

// findActor answers GET /v1/actors?namespace=&name=: a named actor's handle and job.
func (s *Server) findActor(c *gin.Context) {
	name := c.Query("name")
	if name == "" {
		fail(c, http.StatusBadRequest, "bad_input", "name is required")
		return
	}
	id, job, err := s.eng.NamedActor(c.Query("namespace"), name)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"actor": id, "job": job})
}

func (s *Server) callActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	in, err := io.ReadAll(c.Request.Body)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	h, err := s.eng.CallActor(c.Query("job"), id, c.Param("method"), in)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ref": h, "job": jobOr(c.Query("job"))})
}

func (s *Server) killActor(c *gin.Context) {
	id, ok := handleParam(c, "actor")
	if !ok {
		return
	}
	if err := s.eng.KillActor(c.Query("job"), id); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}
