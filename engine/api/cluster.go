package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/raft"
	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/raftstore"
)

// maxCommandBytes caps a forwarded command: a module and its record, with room to spare.
const maxCommandBytes = 80 << 20

// nodeAuth admits requests carrying the cluster's join token.
func (s *Server) nodeAuth(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		fail(c, http.StatusUnauthorized, "unauthorized", "missing join token (Authorization: Bearer <the cluster's join token>)")
	case !s.eng.CheckJoinToken(tok):
		fail(c, http.StatusForbidden, "forbidden", "wrong join token")
	default:
		c.Next()
	}
}

// failCluster maps the control plane's errors: 421 when this node is not the leader (with the
// leader's API URL), 409 for a failed condition or membership refusal, 400 for a malformed
// command, 503 for anything worth retrying.
func (s *Server) failCluster(c *gin.Context, err error) {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raftstore.ErrNoLeader):
		c.AbortWithStatusJSON(http.StatusMisdirectedRequest, gin.H{
			"error":      gin.H{"kind": "not_leader", "message": err.Error()},
			"leader_api": s.eng.LeaderAPI(), "not_leader": true,
		})
	case errors.Is(err, raftstore.ErrConflict), errors.Is(err, raftstore.ErrMembership):
		fail(c, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, raftstore.ErrBadCommand), errors.Is(err, raftstore.ErrCorrupt):
		fail(c, http.StatusBadRequest, "bad_input", err.Error())
	default:
		fail(c, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
}

func (s *Server) join(c *gin.Context) {
	var req engine.JoinRequest
	if !s.readJSON(c, &req) {
		return
	}
	secrets, err := s.eng.ClusterJoin(c.Request.Context(), req)
	if err != nil {
		s.failCluster(c, err)
		return
	}
	c.JSON(http.StatusOK, engine.JoinResponse{Secrets: secrets})
}

func (s *Server) clusterApply(c *gin.Context) {
	cmd, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxCommandBytes))
	if err != nil {
		failErr(c, err, nil)
		return
	}
	if err := s.eng.ClusterApply(c.Request.Context(), cmd); err != nil {
		s.failCluster(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"applied": true})
}

func (s *Server) readIndex(c *gin.Context) {
	idx, err := s.eng.ClusterReadIndex(c.Request.Context())
	if err != nil {
		s.failCluster(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"index": idx})
}

func (s *Server) clusterSelf(c *gin.Context) { c.JSON(http.StatusOK, s.eng.ClusterSelf()) }

func (s *Server) clusterStatus(c *gin.Context) {
	c.JSON(http.StatusOK, s.eng.ClusterStatus(c.Request.Context()))
}

func (s *Server) removeNode(c *gin.Context) {
	if err := s.eng.ClusterRemove(c.Request.Context(), c.Param("id")); err != nil {
		s.failCluster(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"removed": c.Param("id")})
}
