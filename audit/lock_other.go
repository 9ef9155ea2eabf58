//go:build !unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrLocked is returned by Open when another Log has the directory open. Where there is
// no flock, Open cannot tell, and never returns it.
var ErrLocked = errors.New("audit log in use by another writer")

// lockDir opens dir's lock file without locking it: this platform has no flock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("locking audit log: %w", err)
	}
	return f, nil
}
