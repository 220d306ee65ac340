//go:build !linux

package memtable_test

func runRole(role string) int { return 2 }

func setup() {}
