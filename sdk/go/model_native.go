//go:build !wasip1

package lumen

func hostModelChat([]byte) int64 { return unavailable }
