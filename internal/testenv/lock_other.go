//go:build !unix

package testenv

// lockFile does nothing elsewhere: concurrent builds are only wasteful,
// as goBuild never exposes a partly written file.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
