package bench

// anchor is a figure's line of docs/anchors (the shared anchors table): Ray's figure from its
// microbenchmark (recent 2.x on one 64-vCPU m5.16xlarge, tiny b"ok" returns) and Lumen's goal on
// 2 cores, both in the figure's unit.
type anchor struct {
	ray, goal     float64
	lowerIsBetter bool // the unit is a time
}

var anchors = map[string]anchor{
	"single_client_tasks_sync":       {ray: 981, goal: 50_000},
	"single_client_tasks_async":      {ray: 8_040, goal: 200_000},
	"multi_client_tasks_async":       {ray: 21_230, goal: 250_000},
	"1_1_actor_calls_sync":           {ray: 2_012, goal: 100_000},
	"1_1_actor_calls_async":          {ray: 8_664, goal: 300_000},
	"n_n_actor_calls_async":          {ray: 27_376, goal: 300_000},
	"durable_actor_call":             {}, // beside a plain actor; Ray's actors keep no state across their node's loss
	"single_client_put_calls":        {ray: 5_173, goal: 1_000_000},
	"single_client_get_calls":        {ray: 10_620, goal: 2_000_000},
	"single_client_put_gigabytes":    {ray: 19.9}, // goal: half the same run's memcpy bandwidth
	"single_client_get_gigabytes":    {},          // beside memcpy; Ray's benchmark has no get of a large object
	"object_pull_gigabytes":          {},          // beside a raw TCP copy on loopback; no Ray figure
	"placement_group_create/removal": {ray: 765, goal: 50_000},
	"single_client_wait_1k_refs":     {ray: 5.1, goal: 2_000},
	"many_actors":                    {ray: 551, goal: 20_000},                 // Ray's on 64 nodes
	"compiled_workflow_execute":      {ray: 50, goal: 10, lowerIsBetter: true}, // Ray: "< 50 µs"
	"rest_workflow_submit":           {},                                       // no Ray figure, no goal
	// The cluster section: rqlite-style unbatched raft reaches hundreds of writes/s; Ray's GCS
	// needs Redis for HA. Goals: ≥ 20,000 writes/s on 3 nodes with fsync, failover ≤ 2 s.
	"cluster_writes_3_nodes": {goal: 20_000},
	"cluster_failover":       {goal: 2_000, lowerIsBetter: true},
	// A 13 MiB module's push on 3 nodes took 55 s when its bytes travelled in the raft log; the
	// goal is 1 s on loopback with no leader change.
	"module_push_13mb_3_nodes": {goal: 1_000, lowerIsBetter: true},
	// The gpu section: Lumen's goal is ≥ 70 GFLOP/s on one core (Ray has no such figure).
	"matmul_f32_512_1core":  {goal: 70},
	"matmul_f32_1024_1core": {goal: 70},
	"matmul_f32_2048_1core": {goal: 70},
	// The model section: constrained decoding takes at most 115% of free decoding's time per token.
	"model_constrained_vs_free_decode": {goal: 115, lowerIsBetter: true},
	// The data section (issue 5): no Ray figure on this machine; the goal is 20 M rows/s on 2
	// cores, about 0.4 of the plain Go map loop measured beside it.
	"data_groupby_10m_rows": {goal: 20_000_000},
	// The pressure section (issue 15): a trivial task of one job beside a flood of another's,
	// p99 at most 50 ms on 2 cores. No Ray figure.
	"overload_canary_p99": {goal: 50_000, lowerIsBetter: true},
}
