//go:build ignore

// gen regenerates every testdata .wasm, and trampoline.wasm, from the .wat beside it with wabt's wat2wasm
// (apt-get install -y wabt). Run it from the host directory: go generate ./host/
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	wats, err := filepath.Glob("testdata/*.wat")
	if err != nil {
		panic(err)
	}
	bad, _ := filepath.Glob("testdata/bad/*.wat")
	wats = append(append(wats, bad...), "trampoline.wat")
	for _, wat := range wats {
		out := wat[:len(wat)-len(".wat")] + ".wasm"
		cmd := exec.Command("wat2wasm", wat, "-o", out)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "wat2wasm %s: %v\n", wat, err)
			os.Exit(1)
		}
	}
}
