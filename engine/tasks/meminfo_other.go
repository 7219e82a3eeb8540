//go:build !linux

package tasks

// physicalMemory returns 0: the node offers memory only when configured.
func physicalMemory() int64 { return 0 }
