package audit

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"go.uber.org/zap"
)

// tornLine is a torn final line that Open set aside.
type tornLine struct {
	file    string // base name of the file holding its bytes
	bytes   int64
	problem *LineError
}

func (t *tornLine) record() Record {
	return Record{
		Decision: DecisionRecovered,
		Reason: fmt.Sprintf("torn final line set aside: %d bytes in %s (line %d: %s)",
			t.bytes, t.file, t.problem.Line, t.problem.Problem),
		Result: map[string]any{
			"file": t.file, "bytes": t.bytes, "line": t.problem.Line, "problem": t.problem.Problem,
		},
	}
}

// scan is what reading audit.jsonl at Open found.
type scan struct {
	good  int64      // bytes up to the end of the last good line
	first uint64     // seq of the first good line, 0 without one
	torn  *LineError // what is wrong with the bytes after good, nil when nothing is
}

// resume opens audit.jsonl and restores the chain's state from it, or from the last
// rotated file when it holds no record, setting aside a torn final line.
func (l *Log) resume() (*tornLine, error) {
	c := &chain{}
	if err := seedFromRotated(l.dir, c); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(l.path(), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	torn, err := l.restore(f, c)
	if err != nil {
		_ = f.Close() // the error that matters is restore's
		return nil, err
	}
	l.f = f
	return torn, nil
}

// restore scans f, sets the torn tail aside, and sets the log's state from c.
func (l *Log) restore(f *os.File, c *chain) (*tornLine, error) {
	s, err := scanCurrent(f, l.path(), c)
	if err != nil {
		return nil, err
	}
	if c.seq == math.MaxUint64 {
		return nil, fmt.Errorf("opening audit log: %s ends at the last possible seq", l.path())
	}
	var torn *tornLine
	if s.torn != nil {
		if torn, err = l.setAside(f, s); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", l.path(), err)
	}
	if err := syncDir(l.dir); err != nil {
		return nil, err
	}

	l.size, l.seq, l.prev = s.good, c.seq, c.hash
	if !c.started {
		l.prev = ZeroHash
	}
	l.fileFirst = s.first
	if s.first == 0 {
		l.fileFirst = l.seq + 1
	}
	return torn, nil
}

// scanCurrent checks every line of f against c. A bad line is a torn final line when
// nothing follows it; anywhere else it is an error.
func scanCurrent(f *os.File, path string, c *chain) (scan, error) {
	var s scan
	lr := newLineReader(f)
	for n := 1; ; n++ {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		size := int64(len(line)) + 1
		err = c.accept(path, n, line, complete, err)
		var le *LineError
		switch {
		case errors.As(err, &le) && !lr.more():
			s.torn = le
			return s, nil
		case le != nil:
			return s, fmt.Errorf("opening audit log: %w; only a torn final line can be "+
				"recovered: run remediator audit verify, and move the damaged file aside to "+
				"continue from the files before it", err)
		case err != nil:
			return s, fmt.Errorf("opening audit log: %w", err)
		}
		s.good += size
		if s.first == 0 {
			s.first = c.seq
		}
	}
}

// setAside copies the bytes of f after the last good line to a file of their own, makes
// that durable, and only then cuts them from f.
func (l *Log) setAside(f *os.File, s scan) (*tornLine, error) {
	name := tornPrefix + strconv.FormatInt(l.opts.Now().UnixNano(), 10)
	n, err := copyTail(f, s.good, filepath.Join(l.dir, name))
	if err != nil {
		return nil, fmt.Errorf("setting aside the torn final line of %s: %w", l.path(), err)
	}
	if err := syncDir(l.dir); err != nil {
		return nil, err
	}
	if err := f.Truncate(s.good); err != nil {
		return nil, fmt.Errorf("cutting the torn final line from %s: %w", l.path(), err)
	}

	l.logger.Warn("audit log set aside a torn final line", zap.String(keyTornFile, name),
		zap.Int64(keyBytes, n), zap.String(keyProblem, s.torn.Error()))
	return &tornLine{file: name, bytes: n, problem: s.torn}, nil
}

// copyTail writes the bytes of f from offset on to a new file at path, fsynced.
func copyTail(f *os.File, offset int64, path string) (int64, error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.NewSectionReader(f, offset, 1<<62))
	if err == nil {
		err = out.Sync()
	}
	return n, errors.Join(err, out.Close())
}

// seedFromRotated starts c from the last record of the newest rotated file in dir, if
// there is one, so that audit.jsonl's first record is checked against it.
func seedFromRotated(dir string, c *chain) error {
	files, err := Files(dir)
	if err != nil {
		return fmt.Errorf("opening audit log: %w", err)
	}
	var last string
	for _, p := range files {
		if _, ok := rotatedSeq(p); ok {
			last = p
		}
	}
	if last == "" {
		// a fresh log, or one that never rotated
		return nil
	}
	return seedFrom(last, c)
}

// seedFrom reads path to its last line and makes that line the chain's last record.
func seedFrom(path string, c *chain) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening audit log: %w", err)
	}
	defer f.Close()

	lr := newLineReader(f)
	var last []byte
	n := 0
	for {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		n++
		if err != nil || !complete {
			return fmt.Errorf("opening audit log: reading the last record of %s: %w", path,
				&LineError{path, n, "unreadable line in a rotated file"})
		}
		last = append(last[:0], line...)
	}
	h, problem := parseHeader(last)
	if problem != "" {
		return fmt.Errorf("opening audit log: reading the last record of %s: %w", path,
			&LineError{path, n, problem})
	}
	c.advance(path, n, last, h.seq)
	return nil
}
