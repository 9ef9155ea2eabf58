package audit

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Names of the files in a log's directory.
const (
	// CurrentFile is the file appends go to.
	CurrentFile   = "audit.jsonl"
	rotatedPrefix = "audit-"
	rotatedSuffix = ".jsonl"
	tornPrefix    = "audit.torn-"
	lockFile      = "audit.lock"
)

// rotatedName is the name audit.jsonl takes when it is rotated, after the seq of its
// first record, padded so that names sort like their numbers.
func rotatedName(first uint64) string {
	return fmt.Sprintf("%s%020d%s", rotatedPrefix, first, rotatedSuffix)
}

// rotatedSeq returns the first seq a rotated file's name carries, and false when the
// name is not one rotatedName makes.
func rotatedSeq(path string) (uint64, bool) {
	digits, ok := strings.CutPrefix(filepath.Base(path), rotatedPrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, rotatedSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// Files returns the paths of the audit files in dir in the order of the chain: the
// rotated files by their first seq, then audit.jsonl when it exists. Files set aside
// after a crash (audit.torn-*) are not part of the chain and are left out.
func Files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing audit files: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if _, ok := rotatedSeq(e.Name()); ok && e.Type().IsRegular() {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	paths = chainOrder(paths)

	current := filepath.Join(dir, CurrentFile)
	switch _, err := os.Stat(current); {
	case err == nil:
		paths = append(paths, current)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("listing audit files: %w", err)
	}
	return paths, nil
}

// chainOrder returns paths with the rotated files first, by their first seq, and the
// others after them in the order given.
func chainOrder(paths []string) []string {
	out := slices.Clone(paths)
	slices.SortStableFunc(out, func(a, b string) int {
		sa, ra := rotatedSeq(a)
		sb, rb := rotatedSeq(b)
		switch {
		case ra && rb:
			return cmp.Compare(sa, sb)
		case ra:
			return -1
		case rb:
			return 1
		}
		return 0
	})
	return out
}
