package conformance

import (
	"testing"

	"github.com/lumenflow/lumen/internal/guestbuild"
)

// The Rust SDK's own unit tests (its JSON parser and writer, base64) run natively, where every
// host function reports unavailable.
func TestRustSDK_UnitTests(t *testing.T) {
	guestbuild.TrackSources(t, "../rust/src", "../rust/Cargo.toml")
	guestbuild.Run(t, "../rust", []string{"PATH=/usr/bin:/bin", "CARGO_TARGET_DIR=" + guestbuild.CacheDir(t, "rust-sdk-tests")},
		guestbuild.Tool(t, "cargo"), "test", "--offline", "--quiet")
}
