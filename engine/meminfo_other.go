//go:build !linux

package engine

// physicalMemory returns 0: the node offers memory only when configured.
func physicalMemory() int64 { return 0 }
