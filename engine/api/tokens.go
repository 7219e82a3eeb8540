package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/tokens"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Scoped tokens: besides the admin token (read and write) and the read token (read only), which
// are files in the data directory, an admin creates namespace tokens, each confined to one
// namespace with read or write access (package tokens keeps them in the replicated state, so
// every node admits the same ones):
//
//	POST   /v1/tokens {"namespace","access","note"}  -> 201 the record and the token, shown once
//	GET    /v1/tokens                                -> the records, without their secrets
//	DELETE /v1/tokens/:id                            -> 204; every node refuses it once applied
//
// What a namespace token may do is policy's table below, one rule per route: a route missing
// from it refuses namespace tokens, so a new route is closed to them until someone decides.

// principal is who a request's token speaks for, set by auth.
type principal struct {
	admin bool
	// tok is a namespace token's record; nil for the admin and the read token.
	tok *tokens.Token
}

const principalKey = "lumen.principal"

// rule is how a namespace token is confined on a route. The admin token passes every rule; the
// read token passes every rule of a GET (auth refuses its writes).
type rule int

const (
	// ruleAdmin refuses namespace tokens: cluster-wide writes (modules, nodes, placement groups,
	// the KV, quotas, tokens) and reads that are not a namespace's (other namespaces' records,
	// the KV, the tokens).
	ruleAdmin rule = iota
	// ruleOpen admits any token: cluster-wide reads that hold no namespace's data.
	ruleOpen
	// ruleJobQuery: ?job= names a job (of the jobs API) of the token's namespace.
	ruleJobQuery
	// ruleJobBody: the body's "job" names a job of the token's namespace; the task uses no
	// placement group (an admin's) and grants no "data" (the node's data root is no
	// namespace's); a named actor lives in the token's namespace.
	ruleJobBody
	// ruleJobID: :id is a job of the token's namespace; any other answers 404 as a job that does
	// not exist would, so that ids of other namespaces are not disclosed.
	ruleJobID
	// ruleJobSubmit: the submission's namespace (default "default") is the token's, and it
	// grants no "data".
	ruleJobSubmit
	// ruleJobList: ?namespace= is empty or the token's; the list is of the token's namespace.
	ruleJobList
	// ruleActorsRead: GET /v1/actors lists the actors of ?job= (a job of the token's
	// namespace) or finds a named actor of the token's namespace.
	ruleActorsRead
)

// policy is the rule of every authenticated route, by method and gin's route pattern.
var policy = map[string]rule{
	"GET /":          ruleOpen, // the dashboard page: the API calls it makes are checked one by one
	"GET /v1/status": ruleOpen,

	"GET /v1/modules":                      ruleOpen,
	"GET /v1/modules/:ref":                 ruleOpen,
	"POST /v1/modules":                     ruleAdmin, // modules are cluster-wide
	"DELETE /v1/modules/:ref":              ruleAdmin,
	"POST /v1/modules/:ref/call/:function": ruleJobQuery,
	"POST /v1/tasks":                       ruleJobBody,
	"DELETE /v1/tasks/:ref":                ruleJobQuery,
	"POST /v1/objects":                     ruleJobQuery,
	"GET /v1/objects/:ref":                 ruleJobQuery,
	"GET /v1/objects/:ref/meta":            ruleJobQuery,
	"DELETE /v1/objects/:ref":              ruleJobQuery,
	"POST /v1/wait":                        ruleJobBody,
	"POST /v1/actors":                      ruleJobBody,
	"GET /v1/actors":                       ruleActorsRead,
	"POST /v1/actors/:actor/call/:method":  ruleJobQuery,
	"DELETE /v1/actors/:actor":             ruleJobQuery,
	"POST /v1/workflows":                   ruleAdmin, // workflow ids are no namespace's: a namespace runs workflows as jobs
	"GET /v1/workflows":                    ruleAdmin,
	"GET /v1/workflows/:id":                ruleAdmin,
	"GET /v1/workflows/:id/result":         ruleAdmin,
	"DELETE /v1/workflows/:id":             ruleAdmin,
	"POST /v1/compiled":                    ruleAdmin,
	"POST /v1/compiled/:id/execute":        ruleAdmin,
	"GET /v1/cluster":                      ruleOpen,
	"DELETE /v1/cluster/nodes/:id":         ruleAdmin,
	"POST /v1/placement_groups":            ruleAdmin,
	"GET /v1/placement_groups/:id":         ruleOpen,
	"DELETE /v1/placement_groups/:id":      ruleAdmin,
	"PUT /v1/kv/*key":                      ruleAdmin,
	"GET /v1/kv/*key":                      ruleAdmin, // the KV's keys are no namespace's
	"DELETE /v1/kv/*key":                   ruleAdmin,
	"POST /v1/data/jobs":                   ruleAdmin, // the node's data root is no namespace's
	"GET /v1/data/jobs/:id":                ruleAdmin,
	"DELETE /v1/data/jobs/:id":             ruleAdmin,
	"POST /v1/jobs":                        ruleJobSubmit,
	"GET /v1/jobs":                         ruleJobList,
	"GET /v1/jobs/:id":                     ruleJobID,
	"DELETE /v1/jobs/:id":                  ruleJobID,
	"GET /v1/namespaces":                   ruleAdmin, // every namespace's name and quota
	"PUT /v1/namespaces/:name/quota":       ruleAdmin,
	"POST /v1/tokens":                      ruleAdmin,
	"GET /v1/tokens":                       ruleAdmin,
	"DELETE /v1/tokens/:id":                ruleAdmin,
}

// scope confines a namespace token to its namespace by the route's rule; other tokens pass.
func (s *Server) scope(c *gin.Context) {
	p, _ := c.Get(principalKey)
	pr, _ := p.(*principal)
	if pr == nil || pr.tok == nil {
		c.Next()
		return
	}
	ns := pr.tok.Namespace
	r, ok := policy[c.Request.Method+" "+c.FullPath()]
	if !ok || r == ruleAdmin {
		fail(c, wire.KindForbidden, "a token of namespace "+ns+" may not "+c.Request.Method+" "+c.FullPath()+"; it needs the admin token")
		return
	}
	switch r {
	case ruleOpen:
	case ruleJobQuery:
		if !s.ownJob(c, ns, c.Query("job")) {
			return
		}
	case ruleJobBody:
		if !s.jobBody(c, ns) {
			return
		}
	case ruleJobID:
		if ok, err := s.inNamespace(c.Request.Context(), ns, c.Param("id")); err != nil || !ok {
			if err == nil {
				// As the jobs manager words a job it does not have, so the two read alike.
				err = fmt.Errorf("%w: %q", engine.ErrJobNotFound, c.Param("id"))
			}
			failErr(c, err, nil)
			return
		}
	case ruleJobSubmit:
		if !s.jobSubmit(c, ns) {
			return
		}
	case ruleJobList:
		// Read and rewritten through the URL itself: gin caches the query on the first
		// c.Query, which nothing before this has called on this route.
		q := c.Request.URL.Query()
		for _, got := range q["namespace"] {
			if got != ns {
				fail(c, wire.KindForbidden, "a token of namespace "+ns+" lists only its namespace's jobs, not "+got+"'s")
				return
			}
		}
		q.Set("namespace", ns)
		c.Request.URL.RawQuery = q.Encode()
	case ruleActorsRead:
		if name := c.Query("name"); name != "" {
			if c.Query("namespace") != ns {
				fail(c, wire.KindForbidden, "a token of namespace "+ns+" finds only the named actors of namespace "+ns+" (?namespace="+ns+")")
				return
			}
		} else if !s.ownJob(c, ns, c.Query("job")) {
			return
		}
	}
	c.Next()
}

// ownJob checks that job is a job of namespace ns, answering the refusal itself.
func (s *Server) ownJob(c *gin.Context, ns, job string) bool {
	if job == "" {
		fail(c, wire.KindForbidden, "a token of namespace "+ns+" works in the scope of one of its namespace's jobs: name it with job")
		return false
	}
	ok, err := s.inNamespace(c.Request.Context(), ns, job)
	if err != nil && !errors.Is(err, engine.ErrJobNotFound) {
		failErr(c, err, nil)
		return false
	}
	if !ok {
		fail(c, wire.KindForbidden, "job "+job+" is not a job of namespace "+ns)
		return false
	}
	return true
}

// jobNamespaces remembers the namespace of the jobs it has read: a job's namespace never changes
// and its record is never deleted, so an entry never goes stale. It is cleared when full.
type jobNamespaces struct {
	mu sync.Mutex
	m  map[string]string
}

const maxJobNamespaces = 1 << 14

// inNamespace reports whether job id is a job of namespace ns: false with ErrJobNotFound when
// there is no such job.
func (s *Server) inNamespace(ctx context.Context, ns, id string) (bool, error) {
	s.jobNS.mu.Lock()
	got, ok := s.jobNS.m[id]
	s.jobNS.mu.Unlock()
	if !ok {
		j, err := s.eng.Jobs().Get(ctx, id)
		if err != nil {
			return false, err
		}
		got = j.Namespace
		s.jobNS.mu.Lock()
		if s.jobNS.m == nil || len(s.jobNS.m) >= maxJobNamespaces {
			s.jobNS.m = make(map[string]string)
		}
		s.jobNS.m[id] = got
		s.jobNS.mu.Unlock()
	}
	return got == ns, nil
}

// peekBody reads the request's capped body and puts it back for the handler, answering a
// failure itself.
func (s *Server) peekBody(c *gin.Context) ([]byte, bool) {
	b, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return nil, false
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(b))
	c.Request.ContentLength = int64(len(b))
	return b, true
}

// scopeFields are the fields of POST /v1/tasks, /v1/actors and /v1/wait that confine a request,
// decoded by encoding/json as the handlers decode the whole body, so both read the same values.
type scopeFields struct {
	Job            string           `json:"job"`
	Grants         []abi.Capability `json:"grants"`
	PlacementGroup string           `json:"placement_group"`
	BundleIndex    *int             `json:"bundle_index"`
	Name           string           `json:"name"`      // a named actor's
	Namespace      string           `json:"namespace"` // a named actor's
}

func (s *Server) jobBody(c *gin.Context, ns string) bool {
	b, ok := s.peekBody(c)
	if !ok {
		return false
	}
	var f scopeFields
	if err := json.Unmarshal(b, &f); err != nil {
		fail(c, wire.KindBadInput, "request body: "+err.Error())
		return false
	}
	switch {
	case f.PlacementGroup != "" || f.BundleIndex != nil:
		fail(c, wire.KindForbidden, "a token of namespace "+ns+" may not run in a placement group: placement groups are the admin's")
		return false
	case !noData(c, ns, f.Grants):
		return false
	case f.Name != "" && f.Namespace != ns:
		fail(c, wire.KindForbidden, "a token of namespace "+ns+" names its actors in namespace "+ns+", not "+f.Namespace)
		return false
	}
	return s.ownJob(c, ns, f.Job)
}

// noData refuses the "data" capability to a namespace token, answering the refusal itself.
func noData(c *gin.Context, ns string, grants []abi.Capability) bool {
	for _, g := range grants {
		if g == abi.CapData {
			fail(c, wire.KindForbidden, "a token of namespace "+ns+" may not grant \"data\": the node's data root is no namespace's")
			return false
		}
	}
	return true
}

func (s *Server) jobSubmit(c *gin.Context, ns string) bool {
	b, ok := s.peekBody(c)
	if !ok {
		return false
	}
	spec, err := engine.ParseJobSpec(b)
	if err != nil {
		return true // the handler parses the same bytes and answers the same error
	}
	got := spec.Namespace
	if got == "" {
		got = engine.DefaultNamespace
	}
	if got != ns {
		fail(c, wire.KindForbidden, "a token of namespace "+ns+" submits jobs to namespace "+ns+", not "+got)
		return false
	}
	return noData(c, ns, spec.Entrypoint.Grants)
}

// tokensAPI creates, lists and revokes namespace tokens.
type tokensAPI struct{ *Server }

func (s tokensAPI) mount(v1 *gin.RouterGroup) {
	v1.POST("/tokens", s.createToken)
	v1.GET("/tokens", s.listTokens)
	v1.DELETE("/tokens/:id", s.revokeToken)
}

// createdToken is POST /v1/tokens's answer: the record and the token, which is shown only here.
type createdToken struct {
	*tokens.Token
	Secret string `json:"token"`
}

func (s tokensAPI) createToken(c *gin.Context) {
	var spec tokens.Spec
	if !s.readJSON(c, &spec) {
		return
	}
	tok, rec, err := s.tokens.Create(c.Request.Context(), spec, time.Now())
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, createdToken{Token: rec, Secret: tok})
}

func (s tokensAPI) listTokens(c *gin.Context) {
	ts, err := s.tokens.List(c.Request.Context())
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": ts})
}

func (s tokensAPI) revokeToken(c *gin.Context) {
	if err := s.tokens.Revoke(c.Request.Context(), c.Param("id")); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}
