package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/sdk/abi"
)

// workflowsAPI serves the durable and compiled workflows.
type workflowsAPI struct{ *Server }

func (s workflowsAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/workflows", s.submitWorkflow)
	v1.GET("/workflows", s.listWorkflows)
	v1.GET("/workflows/:id", s.getWorkflow)
	v1.GET("/workflows/:id/result", s.workflowResult)
	v1.DELETE("/workflows/:id", s.cancelWorkflow)
	v1.POST("/compiled", s.compileWorkflow)
	v1.POST("/compiled/:id/execute", s.executeCompiled)
}

// workflowBody reads a workflow document (one JSON value) and the ?job= and ?grants=a,b it runs with.
func (s *Server) workflowBody(c *gin.Context) (doc []byte, job string, grants []abi.Capability, ok bool) {
	doc, ok = s.jsonBody(c, "request body")
	if !ok {
		return nil, "", nil, false
	}
	if g := c.Query("grants"); g != "" {
		for _, cp := range strings.Split(g, ",") {
			grants = append(grants, abi.Capability(strings.TrimSpace(cp)))
		}
	}
	if _, ok := grantsOf(c, grants); !ok {
		return nil, "", nil, false
	}
	return doc, c.Query("job"), grants, true
}

func (s workflowsAPI) submitWorkflow(c *gin.Context) {
	doc, job, grants, ok := s.workflowBody(c)
	if !ok {
		return
	}
	id, err := s.eng.SubmitWorkflow(c.Request.Context(), doc, job, grants)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	st, _ := s.eng.Workflows().Get(id)
	c.JSON(http.StatusCreated, st)
}

func (s workflowsAPI) listWorkflows(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"workflows": s.eng.Workflows().List()})
}

func (s workflowsAPI) getWorkflow(c *gin.Context) {
	st, err := s.eng.Workflows().Get(c.Param("id"))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, st)
}

// workflowResult answers the workflow's output as JSON. With ?wait=true it waits up to
// ?timeout_ms= (default 60 s) for the workflow to end; otherwise a running workflow answers 202.
func (s workflowsAPI) workflowResult(c *gin.Context) {
	id := c.Param("id")
	st, err := s.eng.Workflows().Get(id)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	if st.State == engine.WorkflowRunning && c.Query("wait") != "true" {
		c.JSON(http.StatusAccepted, st)
		return
	}
	timeout, ok := timeoutMs(c, 60*time.Second, false)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
	defer cancel()
	out, err := s.eng.Workflows().Result(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			st, _ := s.eng.Workflows().Get(id)
			c.JSON(http.StatusAccepted, st)
			return
		}
		failErr(c, err, nil)
		return
	}
	c.Data(http.StatusOK, "application/json", out)
}

func (s workflowsAPI) cancelWorkflow(c *gin.Context) {
	if err := s.eng.Workflows().Cancel(c.Param("id")); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusAccepted)
}

func (s workflowsAPI) compileWorkflow(c *gin.Context) {
	doc, job, grants, ok := s.workflowBody(c)
	if !ok {
		return
	}
	id, err := s.eng.CompileWorkflow(c.Request.Context(), doc, job, grants)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": id})
}

// executeCompiled runs a compiled workflow on the body as its ${input}.
func (s workflowsAPI) executeCompiled(c *gin.Context) {
	in, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	out, err := s.eng.Workflows().Execute(c.Request.Context(), c.Param("id"), in)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	if json.Valid(out) {
		c.Data(http.StatusOK, "application/json", out)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", out)
}
