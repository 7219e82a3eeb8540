// Package datajobs owns a node's data jobs and its guests' datasets: pipelines of package
// engine/data (docs/data.md) run in the background over the node's data root, with their
// progress, results and cancellation (Service.Run, Status, Wait, Cancel, and RunStep for a
// workflow's pipeline step), and the engine behind the dataset_* host functions (capability
// "data", docs/abi.md §3.3), which let a guest read a pipeline or an object batch by batch, build
// a dataset into an object, or write one into a directory the job grants.
//
// Every path a pipeline names is relative to the data root and must stay inside it, symbolic
// links included (CheckPaths); messages a guest reads name paths as the pipeline does, never
// where the root is. User functions of a pipeline are WASM exports, run in instances of the job
// under its grants.
//
// It knows the engine only through Deps, given to New: the registry's and the runtime's view of
// a module (Guests), the call's objects (Objects), a call's grants and blocking, the node's data
// root and the engine's lifetime. It may import engine/dag, engine/data, engine/wire, host,
// sdk/abi, the standard library and Arrow; never package engine.
package datajobs
