package conformance

import "testing"

// The Rust SDK's own unit tests (its JSON parser and writer, base64) run natively, where every
// host function reports unavailable.
func TestRustSDK_UnitTests(t *testing.T) {
	trackSources(t, "../rust/src", "../rust/Cargo.toml")
	run(t, "../rust", []string{"PATH=/usr/bin:/bin", "CARGO_TARGET_DIR=" + outDir(t, "rust-sdk-tests")}, tool(t, "cargo"),
		"test", "--offline", "--quiet")
}
