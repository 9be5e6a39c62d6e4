package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadTenantsFile reads TENANTS_FILE within its bound (see readRegular).
func ReadTenantsFile(path string) ([]byte, error) { return readRegular(path, MaxTenantsFile) }

// FileSums is the digest of each file named (of nothing when unreadable).
func FileSums(paths ...string) map[string][sha256.Size]byte {
	sums := map[string][sha256.Size]byte{}
	for _, p := range paths {
		if p != "" {
			data, _ := readRegular(p, maxCredentialFile)
			sums[p] = sha256.Sum256(data)
		}
	}
	return sums
}

// checkFile checks a file that another part reads (a certificate, a token).
func checkFile(path string) error {
	_, err := readRegular(path, maxCredentialFile)
	return err
}

// readRegular reads a regular file of at most limit bytes, through symbolic
// links; its errors never show the path.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO's open waits for a writer
	if err != nil {
		return nil, unreadable(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, unreadable(err)
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("is not a regular file (a FIFO, a device or a directory is refused)")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, unreadable(err)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("the file is larger than %d bytes", limit)
	}
	return data, nil
}

func unreadable(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		err = pe.Err
	}
	return fmt.Errorf("the file cannot be read: %v", err)
}
