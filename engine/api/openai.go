package api

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/model/openai"
)

// OpenAIDir is the folder under the data directory that holds the OpenAI-compatible API's
// uploaded files and batch records.
const OpenAIDir = "openai"

// openOpenAI builds the OpenAI-compatible handler when the engine serves a model; it resumes
// the batches that had not finished. The handler is closed by Close, or when the engine
// starts closing, whichever comes first.
func (s *Server) openOpenAI() error {
	ms, ok := s.eng.Serving().Models()
	if !ok {
		return nil
	}
	h, err := openai.NewHandler(openai.HandlerConfig{
		Backend:          ms.Backend,
		Filter:           ms.Filter,
		Dir:              filepath.Join(s.eng.DataDir(), OpenAIDir),
		Validate:         ms.Validate,
		BatchRunner:      ms.BatchRunner,
		BatchConcurrency: ms.BatchConcurrency,
	})
	if err != nil {
		return fmt.Errorf("api: openai handler: %w", err)
	}
	s.oai = h
	s.oaiClosed = make(chan struct{})
	go func() {
		select {
		case <-s.eng.Done():
			s.Close()
		case <-s.oaiClosed:
		}
	}()
	return nil
}

// Close stops what the server runs beside its routes: the OpenAI handler's batches (a batch cut
// short stays in progress and runs again, without its finished lines, at the next start). It
// is safe to call more than once and concurrently.
func (s *Server) Close() error {
	if s.oai == nil {
		return nil
	}
	s.oaiOnce.Do(func() {
		close(s.oaiClosed)
		s.oai.Close()
	})
	return nil
}

// openaiRoutes mounts the OpenAI-compatible API. Errors on these routes, auth included, are in
// OpenAI's shape so that OpenAI client libraries parse them. Without a model the routes answer
// an OpenAI-shaped 404 that says how to serve one.
func (s *Server) openaiRoutes(r *gin.Engine) {
	g := r.Group("/v1", s.openaiAuth)
	var h gin.HandlerFunc
	if s.oai != nil {
		h = gin.WrapH(s.oai)
	} else {
		h = func(c *gin.Context) {
			openaiFail(c, http.StatusNotFound, "model_not_found", "No model is served on this node: start it with --model DIR (a trained model directory) or --openai-base-url URL.")
		}
	}
	g.POST("/chat/completions", h)
	g.GET("/models", h)
	g.GET("/models/:id", h)
	g.POST("/files", h)
	g.GET("/files", h)
	g.GET("/files/:id", h)
	g.DELETE("/files/:id", h)
	g.GET("/files/:id/content", h)
	g.POST("/batches", h)
	g.GET("/batches", h)
	g.GET("/batches/:id", h)
	g.POST("/batches/:id/cancel", h)
}

// openaiAuth is auth with OpenAI's error shape: the admin token may do anything, the read
// token only GET (models, files, batches); a chat completion, an upload or a batch needs the
// admin token.
func (s *Server) openaiAuth(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		openaiFail(c, http.StatusUnauthorized, "missing_api_key", "You didn't provide an API key. Send the Lumen token as a bearer token (Authorization: Bearer <token>); it is in the data directory's token file.")
	case subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminToken)) == 1:
		c.Next()
	case subtle.ConstantTimeCompare([]byte(tok), []byte(s.readToken)) == 1:
		if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
			openaiFail(c, http.StatusForbidden, "insufficient_permissions", "This token may only read; "+c.Request.Method+" "+c.Request.URL.Path+" needs the admin token.")
			return
		}
		c.Next()
	default:
		openaiFail(c, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
	}
}

// openaiFail writes an OpenAI-shaped error and stops the chain.
func openaiFail(c *gin.Context, status int, code, msg string) {
	typ := openai.TypeInvalidRequest
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"message": msg, "type": typ, "param": nil, "code": code}})
}
