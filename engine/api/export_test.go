package api

import "github.com/gin-gonic/gin"

// PolicyRoutes returns the routes of the namespace tokens' policy table ("METHOD pattern").
func PolicyRoutes() []string {
	out := make([]string, 0, len(policy))
	for r := range policy {
		out = append(out, r)
	}
	return out
}

// UncoveredRoutes returns the routes s serves that the policy table does not name, other than
// /healthz, the peer routes and the OpenAI-compatible routes (which admit no namespace token).
func UncoveredRoutes(s *Server) []string {
	openai := gin.New()
	s.openaiRoutes(openai)
	skip := map[string]bool{"GET /healthz": true}
	for _, r := range openai.Routes() {
		skip[r.Method+" "+r.Path] = true
	}
	var out []string
	for _, r := range s.router.Routes() {
		k := r.Method + " " + r.Path
		if _, ok := policy[k]; !ok && !skip[k] && !(len(r.Path) > 5 && r.Path[:6] == "/peer/") {
			out = append(out, k)
		}
	}
	return out
}
