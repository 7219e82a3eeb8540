// Package sdk embeds the sources of the C, Rust and AssemblyScript guest SDKs, so that
// `lumen new` can copy them into a new project, which then builds with no Lumen checkout. The
// SDKs themselves live in c/, rust/ and assemblyscript/; the Go SDK is the package in go/.
package sdk

import "embed"

// Sources holds c/lumen.h and c/lumen.c, rust/Cargo.toml and rust/src/, and
// assemblyscript/assembly/index.ts, under those paths.
//
//go:embed c/lumen.h c/lumen.c rust/Cargo.toml rust/src/*.rs assemblyscript/assembly/index.ts
var Sources embed.FS
