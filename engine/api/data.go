package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// dataAPI serves the data jobs: pipelines of docs/data.md run in the background over the node's
// data root.
type dataAPI struct{ *Server }

// mount adds the data job routes to v1:
//
//	POST   /v1/data/jobs?job=J&grants=a,b   body: a pipeline        -> 201 the job's status
//	GET    /v1/data/jobs/:id                status, per-operator progress and, once done, result
//	DELETE /v1/data/jobs/:id                cancel                  -> 200 the job's status
func (s dataAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/data/jobs", s.submitDataJob)
	v1.GET("/data/jobs/:id", s.getDataJob)
	v1.DELETE("/data/jobs/:id", s.cancelDataJob)
}

func (s dataAPI) submitDataJob(c *gin.Context) {
	doc, job, grants, ok := s.workflowBody(c)
	if !ok {
		return
	}
	g, _ := grantsOf(c, grants)
	id, err := s.eng.DataJobs().Run(c.Request.Context(), job, doc, g)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	st, err := s.eng.DataJobs().Status(id)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, st)
}

func (s dataAPI) getDataJob(c *gin.Context) {
	st, err := s.eng.DataJobs().Status(c.Param("id"))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s dataAPI) cancelDataJob(c *gin.Context) {
	id := c.Param("id")
	if err := s.eng.DataJobs().Cancel(id); err != nil {
		failErr(c, err, nil)
		return
	}
	st, err := s.eng.DataJobs().Wait(c.Request.Context(), id)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, st)
}
