package api_test

import (
	"strings"
	"testing"
	"time"
)

// A single node answers the cluster routes as a cluster of one: itself as leader, applied with
// no lag; the internal KV reads back what it wrote, refuses oversize keys and create-only
// overwrites; placement groups are created, read and removed; the dashboard shows the cluster.
func TestAPI_ClusterOfOne(t *testing.T) {
	c, _, _ := setup(t)
	deadline := time.Now().Add(10 * time.Second)
	var st map[string]any
	for {
		st = c.json("GET", "/v1/cluster", nil, 200)
		if st["leader"] == "local" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	members := st["members"].([]any)
	if len(members) != 1 || members[0].(map[string]any)["reached"] != true || members[0].(map[string]any)["lag"].(float64) != 0 {
		t.Fatalf("members %v", members)
	}

	c.json("PUT", "/v1/kv/config/a", []byte("one"), 200)
	if code, b := c.do("GET", "/v1/kv/config/a", nil); code != 200 || string(b) != "one" {
		t.Fatalf("kv get: %d %s", code, b)
	}
	c.json("PUT", "/v1/kv/config/a?if_absent=true", []byte("two"), 409)
	c.json("GET", "/v1/kv/missing", nil, 404)
	c.json("PUT", "/v1/kv/"+strings.Repeat("k", 600), []byte("x"), 400)
	c.json("DELETE", "/v1/kv/config/a", nil, 200)
	c.json("GET", "/v1/kv/config/a", nil, 404)

	pg := c.json("POST", "/v1/placement_groups", []byte(`{"strategy":"PACK","bundles":[{"cpu":0.5}]}`), 201)
	id := pg["id"].(string)
	if got := c.json("GET", "/v1/placement_groups/"+id, nil, 200); got["ready"].([]any)[0] != true {
		t.Fatalf("group %v", got)
	}
	c.json("POST", "/v1/placement_groups", []byte(`{"strategy":"NEAR","bundles":[{"cpu":1}]}`), 400)
	c.json("POST", "/v1/placement_groups", []byte(`{"bundles":[{"cpu":1e9}]}`), 400)
	if code, _ := c.do("DELETE", "/v1/placement_groups/"+id, nil); code != 204 {
		t.Fatalf("remove group: %d", code)
	}
	c.json("GET", "/v1/placement_groups/"+id, nil, 404)

	// Node-to-node routes want the node credential, not an API token; the public API no longer
	// has them.
	c.json("POST", "/peer/v1/cluster/apply", []byte{1, 0, 0, 0}, 403)
	c.json("POST", "/peer/v1/cluster/join", []byte(`{"id":"x","raft":"127.0.0.1:1","api":"http://x"}`), 403)
	c.json("POST", "/v1/cluster/join", []byte(`{"id":"x","raft":"127.0.0.1:1","api":"http://x"}`), 404)

	code, page := c.do("GET", "/", nil)
	if code != 200 || !strings.Contains(string(page), "/v1/cluster") || !strings.Contains(string(page), "<h2>Cluster</h2>") {
		t.Fatalf("dashboard: %d", code)
	}
}
