package api

import (
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// failLeader answers a failed control-plane operation: like failErr, but "not the leader" is a
// 421 that says where the leader's API is, so that a caller (a follower forwarding, the CLI) can
// go there.
func (s *Server) failLeader(c *gin.Context, err error) { failWith(c, s.leaderError(err), nil) }

// leaderError is classify, but "not the leader" says where the leader's API is. It is also the
// error mapping of the node-to-node routes (package peer), which forward to the leader.
func (s *Server) leaderError(err error) *wire.Error {
	if raftstore.NotLeader(err) {
		return &wire.Error{Kind: wire.KindNotLeader, Message: err.Error(), LeaderAPI: s.eng.Cluster().LeaderAPI()}
	}
	return classify(err)
}

// clusterAPI serves the cluster's membership, its key-value store and its placement groups.
type clusterAPI struct{ *Server }

func (s clusterAPI) mount(v1 *gin.RouterGroup) {
	v1.GET("/cluster", s.clusterStatus)
	v1.DELETE("/cluster/nodes/:id", s.removeNode)
	v1.POST("/placement_groups", s.createGroup)
	v1.GET("/placement_groups/:id", s.getGroup)
	v1.DELETE("/placement_groups/:id", s.removeGroup)
	v1.PUT("/kv/*key", s.kvPut)
	v1.GET("/kv/*key", s.kvGet)
	v1.DELETE("/kv/*key", s.kvDelete)
}

func (s clusterAPI) clusterStatus(c *gin.Context) {
	c.JSON(http.StatusOK, s.eng.Cluster().Status(c.Request.Context()))
}

func (s clusterAPI) removeNode(c *gin.Context) {
	if err := s.eng.Cluster().Remove(c.Request.Context(), c.Param("id")); err != nil {
		s.failLeader(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"removed": c.Param("id")})
}

// The internal key-value store: PUT/GET/DELETE /v1/kv/*key. PUT takes the raw value as its body,
// an optional Idempotency-Key header (a retry with the same key is applied once) and
// ?if_absent=true (create only: 409 when the key exists).
func (s clusterAPI) kvPut(c *gin.Context) {
	val, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, engine.MaxKVValueLen))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	err = s.eng.Cluster().KVPut(c.Request.Context(), kvKey(c), val, c.GetHeader("Idempotency-Key"), c.Query("if_absent") == "true")
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"key": kvKey(c)})
}

func (s clusterAPI) kvGet(c *gin.Context) {
	v, err := s.eng.Cluster().KVGet(c.Request.Context(), kvKey(c))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.Data(http.StatusOK, "application/octet-stream", v)
}

func (s clusterAPI) kvDelete(c *gin.Context) {
	if err := s.eng.Cluster().KVDelete(c.Request.Context(), kvKey(c), c.GetHeader("Idempotency-Key")); err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"deleted": kvKey(c)})
}

func kvKey(c *gin.Context) string { return strings.TrimPrefix(c.Param("key"), "/") }

// Placement groups: POST /v1/placement_groups {"name", "strategy", "bundles": [{"cpu": 1}, …]}
// (?wait=false answers before the bundles are reserved), GET and DELETE /v1/placement_groups/:id.
func (s clusterAPI) createGroup(c *gin.Context) {
	var spec engine.PlacementGroupSpec
	if !s.readJSON(c, &spec) {
		return
	}
	pg, err := s.eng.Groups().Create(c.Request.Context(), spec, c.Query("wait") != "false")
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusCreated, pg)
}

func (s clusterAPI) getGroup(c *gin.Context) {
	pg, err := s.eng.Groups().Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, pg)
}

func (s clusterAPI) removeGroup(c *gin.Context) {
	if err := s.eng.Groups().Remove(c.Request.Context(), c.Param("id")); err != nil {
		failErr(c, err, nil)
		return
	}
	c.Status(http.StatusNoContent)
}
