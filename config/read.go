package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadTenantsFile reads TENANTS_FILE within its bound (see readRegular).
func ReadTenantsFile(path string) ([]byte, error) { return readRegular(path, MaxTenantsFile) }

// readRegular reads a regular file of at most limit bytes, through
// symbolic links (Kubernetes mounts a Secret's keys as links into ..data/),
// and refuses anything else at once: a FIFO would block, a device never
// end. Its errors never show the path, which may be a misplaced secret.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := openRegular(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("the file cannot be read: %v", pathReason(err))
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("the file is larger than %d bytes", limit)
	}
	return data, nil
}

// checkFile checks a file that another part reads (a certificate, a token)
// as readRegular would.
func checkFile(path string) error {
	f, err := openRegular(path, maxCredentialFile)
	if err != nil {
		return err
	}
	return f.Close()
}

// openRegular opens path without waiting for a FIFO's writer, and keeps it
// only if it is a regular file within limit.
func openRegular(path string, limit int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("the file cannot be read: %v", pathReason(err))
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("the file cannot be read: %v", pathReason(err))
	case !st.Mode().IsRegular():
		err = errors.New("is not a regular file (a FIFO, a device or a directory is refused)")
	case st.Size() > limit:
		err = fmt.Errorf("the file is larger than %d bytes", limit)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// pathReason is the reason of an *os.PathError without its path.
func pathReason(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
