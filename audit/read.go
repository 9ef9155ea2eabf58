package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"time"
)

// Filter selects records for Read. Its zero value selects every record.
type Filter struct {
	// RunID keeps only the records of this run. Default: any run, and records of none.
	RunID string
	// Since keeps only the records stamped at or after it. Default: all.
	Since time.Time
}

func (f Filter) match(r *Record) bool {
	if f.RunID != "" && r.RunID != f.RunID {
		return false
	}
	return f.Since.IsZero() || !r.Time.Before(f.Since)
}

// Entry is one record as Read found it.
type Entry struct {
	Record Record
	// Line is the record's line as written, without its newline: the bytes the chain hashes.
	Line []byte
	// File and LineNo say where the line is.
	File   string
	LineNo int
}

// Read returns the records in dir's audit files, oldest first, that f selects. It does
// not check the chain (Verify does). A line it cannot decode ends the sequence with a
// *LineError. An unterminated final line of the last file, which a running server may
// be writing at that moment, is left out.
func Read(dir string, f Filter) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		files, err := Files(dir)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		for i, path := range files {
			if !readFile(path, i == len(files)-1, f, yield) {
				return
			}
		}
	}
}

// readFile yields the records of path that f selects, and whether to go on.
func readFile(path string, last bool, f Filter, yield func(Entry, error) bool) bool {
	stop := func(err error) bool {
		yield(Entry{}, err)
		return false
	}
	file, err := os.Open(path)
	if err != nil {
		return stop(fmt.Errorf("reading audit file: %w", err))
	}
	defer file.Close()

	lr := newLineReader(file)
	for n := 1; ; n++ {
		line, complete, err := lr.next()
		switch {
		case errors.Is(err, io.EOF):
			return true
		case errors.Is(err, errLineTooLong):
			return stop(&LineError{path, n, err.Error()})
		case err != nil:
			return stop(fmt.Errorf("reading %s: %w", path, err))
		case !complete && last:
			// being written, or torn: the next Open sets it aside
			return true
		case !complete:
			return stop(&LineError{path, n, "truncated final line: no newline after it"})
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return stop(&LineError{path, n, "not a valid record: " + err.Error()})
		}
		if !f.match(&rec) {
			continue
		}
		if !yield(Entry{Record: rec, Line: bytes.Clone(line), File: path, LineNo: n}, nil) {
			return false
		}
	}
}
