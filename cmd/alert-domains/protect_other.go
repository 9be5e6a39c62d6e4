//go:build !linux

package main

// protectProcess does nothing where the system offers no way to keep other
// processes of the same user from reading the environment.
func protectProcess() error { return nil }
