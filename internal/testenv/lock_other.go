//go:build !unix

package testenv

// lockFile does nothing: concurrent builds only waste time.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
