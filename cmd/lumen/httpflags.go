package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine/api"
)

// httpFlags are the API listener's limits, taken by every command that serves (`lumen up`,
// `lumen server`, `lumen worker`). They bound what one connection may hold of the node: the
// public API, the node-to-node routes and the OpenAI-compatible API share the listener.
type httpFlags struct {
	header, body, write, idle *time.Duration
	maxHeader                 *int
	maxInline                 *int64
}

func addHTTPFlags(fl *flag.FlagSet) httpFlags {
	return httpFlags{
		header: fl.Duration("http-header-timeout", api.DefaultReadHeaderTimeout, "longest a client may take to send a request's headers"),
		body: fl.Duration("http-body-timeout", api.DefaultBodyTimeout,
			"longest a client may take to send a request's body, counted from its headers (a body sent slower is cut; raise it for big uploads over slow links)"),
		write: fl.Duration("http-write-timeout", api.DefaultWriteTimeout,
			"longest one write of a response may block on a client that does not read (counted per write: long calls and streamed responses are not cut)"),
		idle:      fl.Duration("http-idle-timeout", api.DefaultIdleTimeout, "how long a kept-alive connection may wait for its next request"),
		maxHeader: fl.Int("http-max-header-bytes", api.DefaultMaxHeaderBytes, "largest request header block (431 past it)"),
		maxInline: fl.Int64("max-inline-bytes", api.DefaultMaxInlineBytes,
			"most bytes of JSON the guest bytes of one response take (a call's output and log, a job's result); the rest is dropped and counted"),
	}
}

// config checks the flags and returns the API's configuration.
func (f httpFlags) config() (api.Config, error) {
	for name, d := range map[string]time.Duration{"--http-header-timeout": *f.header, "--http-body-timeout": *f.body,
		"--http-write-timeout": *f.write, "--http-idle-timeout": *f.idle} {
		if d <= 0 {
			return api.Config{}, fmt.Errorf("%s must be positive, not %v", name, d)
		}
	}
	if *f.maxHeader < 1024 {
		return api.Config{}, fmt.Errorf("--http-max-header-bytes must be at least 1024, not %d", *f.maxHeader)
	}
	if *f.maxInline < 1024 {
		return api.Config{}, fmt.Errorf("--max-inline-bytes must be at least 1024, not %d", *f.maxInline)
	}
	return api.Config{MaxInlineBytes: *f.maxInline, HTTP: api.HTTPLimits{
		ReadHeaderTimeout: *f.header, BodyTimeout: *f.body, WriteTimeout: *f.write, IdleTimeout: *f.idle, MaxHeaderBytes: *f.maxHeader,
	}}, nil
}
