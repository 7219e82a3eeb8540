// Package api serves Lumen's REST API and dashboard with gin: one routes table, bearer-token auth
// on every route but /healthz, body limits, and one mapping from errors to statuses and to the
// error shape {"error":{"kind":"…","message":"…"}}. It also mounts the node-to-node routes of
// package peer (/peer/v1/…), which the node credential admits and no API token does.
package api

import (
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/tokens"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/model/openai"
	"github.com/lumenflow/lumen/plugins"
)

// Token file names in the data directory, each holding one hex token, mode 0600. Every node of
// a cluster holds the same tokens: a joining node receives them from the leader.
const (
	AdminTokenFile = engine.AdminTokenFile // may read and write
	ReadTokenFile  = engine.ReadTokenFile  // may only read
)

// Config configures a Server.
type Config struct {
	// MaxBodyBytes caps a request body other than a module upload (default 8 MiB).
	MaxBodyBytes int64
	// MaxModuleBytes caps a module upload (default 64 MiB).
	MaxModuleBytes int64
	// MaxInlineBytes caps the encoded size of the guest bytes one response carries: a call's
	// output and log, a job's result (default 8 MiB; output.go).
	MaxInlineBytes int64
	// HTTP are the connection limits of the server's listener (limits.go).
	HTTP HTTPLimits
}

// Server is the HTTP face of an Engine.
type Server struct {
	eng        *engine.Engine
	cfg        Config
	adminToken string
	readToken  string
	tokens     *tokens.Store // namespace tokens (tokens.go)
	jobNS      jobNamespaces
	router     *gin.Engine

	oai       *openai.Handler // nil when the engine serves no model (openai.go)
	oaiClosed chan struct{}
	oaiOnce   sync.Once
}

// New loads the API tokens from the engine's data directory, generating them at first start,
// and builds the routes.
func New(eng *engine.Engine, cfg Config) (*Server, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxModuleBytes <= 0 {
		cfg.MaxModuleBytes = plugins.DefaultMaxModuleBytes
	}
	if cfg.MaxInlineBytes <= 0 {
		cfg.MaxInlineBytes = DefaultMaxInlineBytes
	}
	cfg.HTTP = cfg.HTTP.withDefaults()
	admin, err := LoadOrCreateToken(filepath.Join(eng.DataDir(), AdminTokenFile))
	if err != nil {
		return nil, err
	}
	read, err := LoadOrCreateToken(filepath.Join(eng.DataDir(), ReadTokenFile))
	if err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{eng: eng, cfg: cfg, adminToken: admin, readToken: read, router: gin.New(),
		tokens: tokens.New(eng.Cluster().Raft())}
	if err := s.openOpenAI(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Handler returns the server's http.Handler, which sets each request's body and write deadlines
// (HTTPLimits). HTTPServer serves it with the limits of the connection.
func (s *Server) Handler() http.Handler { return deadlines(s.router, s.cfg.HTTP) }

// AdminToken returns the token that may read and write.
func (s *Server) AdminToken() string { return s.adminToken }

// LoadOrCreateToken reads a token file, or creates it with a fresh random token and mode 0600.
// A token file readable by others is refused.
func LoadOrCreateToken(path string) (string, error) {
	tok, err := engine.LoadOrCreateSecret(path)
	if err != nil {
		return "", fmt.Errorf("api: token: %w", err)
	}
	return tok, nil
}

func (s *Server) routes() {
	r := s.router
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.NoRoute(func(c *gin.Context) {
		fail(c, wire.KindNotFound, "no route "+c.Request.Method+" "+c.Request.URL.Path)
	})

	s.openaiRoutes(r) // before the group below: these answer errors in OpenAI's shape
	authed := r.Group("/", s.auth, refuseNodeHeaders, s.scope)
	authed.GET("/", s.dashboard)
	v1 := authed.Group("/v1")
	v1.GET("/status", s.status)
	for _, api := range []interface{ mount(*gin.RouterGroup) }{
		modulesAPI{s}, tasksAPI{s}, objectsAPI{s}, actorsAPI{s}, workflowsAPI{s}, clusterAPI{s}, dataAPI{s}, jobsAPI{s}, tokensAPI{s},
	} {
		api.mount(v1)
	}

	// Node-to-node routes (/peer/v1/…), admitted by the node credential only, never by a token.
	peer.Mount(r, s.eng.Peer(), peer.Config{Credential: s.eng.PeerCredential(), Classify: s.leaderError,
		MaxBodyBytes: 2*s.cfg.MaxBodyBytes + 1<<20}) // a call's input, base64 in JSON, and where its objects live
}

// nodeHeaders are the headers nodes sent each other through the public API before they had the
// peer routes: "place this task here", "this node owns that actor", "these objects live there".
var nodeHeaders = []string{"Lumen-Placed", "Lumen-Actor-Owner", "Lumen-Remote-Refs"}

// refuseNodeHeaders answers 400 to a public request that carries a node-to-node header: no token
// holder may pass for a node, and a node of an older version learns why its request failed.
func refuseNodeHeaders(c *gin.Context) {
	for _, h := range nodeHeaders {
		if c.GetHeader(h) != "" {
			fail(c, wire.KindBadInput, h+" is a node-to-node header, which the public API does not take: nodes place work on each other through "+peer.Prefix+" with the node credential")
			return
		}
	}
	c.Next()
}

// auth checks the bearer token (or ?token= for the dashboard page): the admin token, the read
// token or a namespace token (tokens.go), whose confinement scope checks next. It refuses writes
// with the read token and with a namespace token of read access.
func (s *Server) auth(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok && c.Request.Method == http.MethodGet && c.Request.URL.Path == "/" {
		tok, ok = c.GetQuery("token")
	}
	readOnly := false
	switch {
	case !ok || tok == "":
		fail(c, wire.KindUnauthorized, "missing bearer token (Authorization: Bearer <token>; see the token file in the data directory)")
		return
	case subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminToken)) == 1:
		c.Set(principalKey, &principal{admin: true})
	case subtle.ConstantTimeCompare([]byte(tok), []byte(s.readToken)) == 1:
		c.Set(principalKey, &principal{})
		readOnly = true
	default:
		rec, err := s.tokens.Check(c.Request.Context(), tok)
		if err != nil {
			if k, _ := wire.KindOf(err); k == wire.KindUnauthorized {
				fail(c, wire.KindUnauthorized, "invalid token")
			} else {
				failErr(c, err, nil)
			}
			return
		}
		c.Set(principalKey, &principal{tok: rec})
		readOnly = rec.Access != tokens.Write
	}
	if readOnly && c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		fail(c, wire.KindForbidden, "this token may only read")
		return
	}
	c.Next()
}

// modulesAPI serves module uploads, reads, deletes and direct calls.
type modulesAPI struct{ *Server }

func (s modulesAPI) mount(v1 *gin.RouterGroup) {
	v1.GET("/modules", s.listModules)
	v1.POST("/modules", s.uploadModule)
	v1.GET("/modules/:ref", s.getModule)
	v1.DELETE("/modules/:ref", s.deleteModule)
	v1.POST("/modules/:ref/call/:function", s.callFunction)
}

func (s modulesAPI) listModules(c *gin.Context) {
	mods := s.eng.Modules().Registry().List()
	if mods == nil {
		mods = []*plugins.Module{}
	}
	c.JSON(http.StatusOK, gin.H{"modules": mods})
}

func (s modulesAPI) getModule(c *gin.Context) {
	m, err := s.eng.Modules().Registry().Resolve(c.Param("ref"))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, m)
}

// uploadModule takes the module's bytes as the body (raw, or the "module" part of a multipart
// form) and name, version and description as query parameters. What the module may do is what its
// own manifest requests.
func (s modulesAPI) uploadModule(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxModuleBytes+1<<20)
	var body io.Reader = c.Request.Body
	if strings.HasPrefix(c.ContentType(), "multipart/form-data") {
		fh, err := c.FormFile("module")
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				failErr(c, err, nil)
				return
			}
			fail(c, wire.KindBadInput, "multipart upload needs a file part named \"module\": "+err.Error())
			return
		}
		f, err := fh.Open()
		if err != nil {
			failErr(c, err, nil)
			return
		}
		defer f.Close()
		body = f
	}
	wasm, err := io.ReadAll(io.LimitReader(body, s.cfg.MaxModuleBytes+1))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	if int64(len(wasm)) > s.cfg.MaxModuleBytes {
		failErr(c, fmt.Errorf("%w: upload exceeds %d bytes", plugins.ErrTooLarge, s.cfg.MaxModuleBytes), nil)
		return
	}
	opts := plugins.AddOptions{Name: c.Query("name"), Version: c.Query("version"), Description: c.Query("description")}
	m, err := s.eng.Modules().Add(c.Request.Context(), wasm, opts)
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, m)
}

func (s modulesAPI) deleteModule(c *gin.Context) {
	if err := s.eng.Modules().Delete(c.Request.Context(), c.Param("ref")); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}

// callFunction runs one function synchronously. The body is its input; ?job= picks the instance
// pool and ?timeout_ms= the deadline. Its output and log are carried as output.go says.
func (s modulesAPI) callFunction(c *gin.Context) {
	in, ok := body(c, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	req := engine.CallRequest{Module: c.Param("ref"), Function: c.Param("function"), Input: in, Job: c.Query("job")}
	if req.Limits.Timeout, ok = timeoutMs(c, 0, false); !ok {
		return
	}
	res, err := s.eng.Tasks().Call(c.Request.Context(), req)
	if err != nil {
		failErr(c, err, s.callFields(res, false))
		return
	}
	out := s.callFields(res, true)
	out["duration_us"] = res.Duration.Microseconds()
	c.JSON(http.StatusOK, out)
}

//go:embed dashboard.html
var dashboardHTML []byte

func (s *Server) dashboard(c *gin.Context) {
	c.Data(http.StatusOK, "text/html; charset=utf-8", dashboardHTML)
}

// Version is the build's version, set by the linker (-X) or left as "dev".
var Version = "dev"

func (s *Server) status(c *gin.Context) {
	st := s.eng.Stats()
	host, _ := os.Hostname()
	c.JSON(http.StatusOK, gin.H{
		"node": host, "version": Version, "uptime_seconds": time.Since(st.Started).Seconds(),
		"resources": st.Resources, "available": st.Available, "modules": st.Modules,
		"objects": st.Objects, "object_bytes": st.ObjectBytes, "actors": st.Actors,
		"tasks": gin.H{"ran": st.Tasks.Ran, "placed_out": st.Tasks.PlacedOut, "retried": st.Tasks.Retried,
			"by_origin": st.Tasks.ByOrigin, "queued": st.Queued},
	})
}
