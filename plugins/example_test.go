package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
)

func ExampleRegistry() {
	ctx := context.Background()
	rt, err := host.New(ctx, host.Config{})
	if err != nil {
		panic(err)
	}
	defer rt.Close(ctx)
	reg, err := plugins.Open(ctx, plugins.Config{Inspector: rt}) // Dir "" keeps it in memory
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	wasm, err := os.ReadFile("testdata/guest.wasm")
	if err != nil {
		panic(err)
	}
	if _, err := reg.Add(ctx, wasm, plugins.AddOptions{Name: "echo", Version: "1.0.0"}); err != nil {
		panic(err)
	}
	m, err := reg.Resolve("echo")
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Ref(), m.Size, m.Manifest.Functions[0].Name)

	_, err = reg.Add(ctx, []byte("#!/bin/sh"), plugins.AddOptions{})
	fmt.Println(errors.Is(err, plugins.ErrNotWasm), err)

	_, err = reg.Add(ctx, wasm, plugins.AddOptions{Name: "echo", Version: "1.0"})
	fmt.Println(errors.Is(err, plugins.ErrInvalid))
	// Output:
	// echo@1.0.0 232 echo
	// true plugins: not a WebAssembly module: it starts with "#!/b", not "\x00asm"
	// true
}
