package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/wire"
)

// Jobs (Ray's Jobs API): POST /v1/jobs submits, GET /v1/jobs lists, GET /v1/jobs/:id reads a
// record (with the result once the job succeeded), DELETE /v1/jobs/:id stops, GET
// /v1/namespaces lists the namespaces. Every node answers from the replicated records.

// jobsAPI serves the jobs and namespaces.
type jobsAPI struct{ *Server }

func (s jobsAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/jobs", s.submitJob)
	v1.GET("/jobs", s.listJobs)
	v1.GET("/jobs/:id", s.getJob)
	v1.DELETE("/jobs/:id", s.stopJob)
	v1.GET("/namespaces", s.listNamespaces)
	v1.PUT("/namespaces/:name/quota", s.setNamespaceQuota)
}

// jobView is a job's record as GET /v1/jobs/:id answers it: with the result of a job that
// succeeded, as JSON when it is JSON, else as text.
type jobView struct {
	*engine.Job
	Result     json.RawMessage `json:"result,omitempty"`
	ResultText *string         `json:"result_text,omitempty"`
}

func (s jobsAPI) submitJob(c *gin.Context) {
	b, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	spec, err := engine.ParseJobSpec(b)
	if err != nil {
		fail(c, wire.KindBadInput, err.Error())
		return
	}
	if _, ok := grantsOf(c, spec.Entrypoint.Grants); !ok {
		return
	}
	j, err := s.eng.Jobs().Submit(c.Request.Context(), *spec)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, j)
}

func (s jobsAPI) listJobs(c *gin.Context) {
	js, err := s.eng.Jobs().List(c.Request.Context(), engine.JobFilter{Namespace: c.Query("namespace"), Status: c.Query("status")})
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"jobs": js})
}

// getJob answers a job's record. With ?wait=true it first waits up to ?timeout_ms= (default
// 60 s) for the job to end; a job still running then answers 202.
func (s jobsAPI) getJob(c *gin.Context) {
	id := c.Param("id")
	ctx := c.Request.Context()
	var j *engine.Job
	var err error
	switch c.Query("wait") {
	case "", "false":
		j, err = s.eng.Jobs().Get(ctx, id)
	case "true":
		timeout, ok := timeoutMs(c, 60*time.Second, false)
		if !ok {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		j, err = s.eng.Jobs().Wait(wctx, id)
		if j != nil && errors.Is(err, context.DeadlineExceeded) {
			c.JSON(http.StatusAccepted, jobView{Job: j})
			return
		}
	default:
		fail(c, wire.KindBadInput, "wait must be true or false")
		return
	}
	if err != nil {
		failErr(c, err, nil)
		return
	}
	v := jobView{Job: j}
	if j.Status == engine.JobSucceeded {
		if out, err := s.eng.Jobs().Result(ctx, id); err == nil {
			if json.Valid(out) && len(out) > 0 {
				v.Result = out
			} else {
				text := string(out)
				v.ResultText = &text
			}
		}
	}
	c.JSON(http.StatusOK, v)
}

// stopJob stops a job and answers its record; a job that has ended answers 409.
func (s jobsAPI) stopJob(c *gin.Context) {
	j, err := s.eng.Jobs().Stop(c.Request.Context(), c.Param("id"))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s jobsAPI) listNamespaces(c *gin.Context) {
	nss, err := s.eng.Jobs().Namespaces(c.Request.Context())
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"namespaces": nss})
}

// setNamespaceQuota sets what each job of a namespace may hold on each node: PUT
// /v1/namespaces/:name/quota with a quota ({"tasks":…, "waiting":…, "submit_rate":…,
// "submit_burst":…}) answers the namespace's record.
func (s jobsAPI) setNamespaceQuota(c *gin.Context) {
	var q wire.Quota
	if !s.readJSON(c, &q) {
		return
	}
	ns, err := s.eng.Jobs().SetNamespaceQuota(c.Request.Context(), c.Param("name"), q)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, ns)
}
