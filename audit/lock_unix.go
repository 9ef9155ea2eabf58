//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked is returned by Open when another Log, in this process or another, has the
// directory open: two writers would fork the chain.
var ErrLocked = errors.New("audit log in use by another writer")

// lockDir takes an exclusive lock on dir's lock file, held until the file is closed.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("locking audit log: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return f, nil
	}
	_ = f.Close() // the lock was not taken; nothing to release
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("locking %s: %w", path, ErrLocked)
	}
	return nil, fmt.Errorf("locking %s: %w", path, err)
}
