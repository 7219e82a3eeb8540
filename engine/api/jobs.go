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
// succeeded in the form output.go says (result, result_text or result_base64).
type jobView struct {
	*engine.Job
	result gin.H
}

// MarshalJSON writes the record's fields and the result's.
func (v jobView) MarshalJSON() ([]byte, error) {
	rec, err := json.Marshal(v.Job)
	if err != nil || len(v.result) == 0 || len(rec) < 2 || rec[len(rec)-1] != '}' {
		return rec, err
	}
	res, err := json.Marshal(v.result)
	if err != nil {
		return nil, err
	}
	if len(rec) == 2 { // {}
		return res, nil
	}
	return append(append(rec[:len(rec)-1], ','), res[1:]...), nil
}

func (s jobsAPI) submitJob(c *gin.Context) {
	b, ok := s.jsonBody(c, "job request")
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
			v.result = gin.H{}
			budget := int(s.cfg.MaxInlineBytes)
			inline(v.result, resultKeys, out, &budget)
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
