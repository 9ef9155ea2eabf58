package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Result is what Verify found in files whose chain holds.
type Result struct {
	// Files is how many files were read.
	Files int
	// Records is how many records were verified.
	Records uint64
	// FirstSeq and LastSeq are the seqs of the first and last records verified.
	FirstSeq, LastSeq uint64
	// LastHash is the hash of the last line: compare it with a copy kept elsewhere to
	// prove that nothing after it was rewritten either.
	LastHash string
	// StartsMidChain says the first record follows one that was not given: the files
	// before it are missing, for instance deleted by retention. Nothing given was changed.
	StartsMidChain bool
}

// LineError is what is wrong at one line of an audit file.
type LineError struct {
	// File is the file's path as given.
	File string
	// Line counts from 1.
	Line int
	// Problem says what is wrong, in words for people.
	Problem string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Problem)
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLineSize)

// Verify reads the audit files at paths as one chain, the rotated files first in the
// order of their first seq and audit.jsonl (or any other name) last, and checks that
// every line is a record of a known schema version, that each seq is one more than the
// one before, that each prev is the hash of the line before, and that every file ends
// with a newline. It returns the first problem as a *LineError, with what it had
// verified up to there.
func Verify(paths ...string) (Result, error) {
	if len(paths) == 0 {
		return Result{}, errors.New("verifying audit files: no files given")
	}
	c := &chain{}
	for _, path := range chainOrder(paths) {
		if err := c.verifyFile(path); err != nil {
			return c.res, err
		}
		c.res.Files++
	}
	return c.res, nil
}

// chain is the state of a verification: the last record accepted and where it was.
type chain struct {
	started bool
	seq     uint64
	hash    string
	file    string
	line    int
	res     Result
}

func (c *chain) verifyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verifying audit files: %w", err)
	}
	defer f.Close()

	nameSeq, rotated := rotatedSeq(path)
	lr := newLineReader(f)
	n := 0
	for {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		n++
		if err := c.accept(path, n, line, complete, err); err != nil {
			return err
		}
		if n == 1 && rotated && c.seq != nameSeq {
			problem := fmt.Sprintf("seq %d, but the file name says %d", c.seq, nameSeq)
			return &LineError{path, n, problem}
		}
	}
	if n == 0 && rotated {
		return &LineError{path, 1, "empty rotated file"}
	}
	return nil
}

// accept checks the line at path:n, read with complete and readErr as lineReader.next
// returned them, and advances the chain past it.
func (c *chain) accept(path string, n int, line []byte, complete bool, readErr error) error {
	switch {
	case errors.Is(readErr, errLineTooLong):
		return &LineError{path, n, readErr.Error()}
	case readErr != nil:
		return fmt.Errorf("reading %s: %w", path, readErr)
	case !complete:
		return &LineError{path, n, "truncated final line: no newline after it"}
	}
	h, problem := parseHeader(line)
	if problem == "" {
		problem = c.link(path, h)
	}
	if problem != "" {
		return &LineError{path, n, problem}
	}
	c.advance(path, n, line, h.seq)
	return nil
}

// link says what is wrong with h following the chain's last record, or "".
func (c *chain) link(path string, h header) string {
	if !c.started {
		switch {
		case h.prev == ZeroHash && h.seq != 1:
			return fmt.Sprintf("seq %d has the zero prev only seq 1 may have", h.seq)
		case h.prev != ZeroHash && h.seq == 1:
			return "seq 1 has a prev other than zero"
		}
		c.res.FirstSeq = h.seq
		c.res.StartsMidChain = h.prev != ZeroHash
		return ""
	}
	switch {
	case h.seq == c.seq:
		return fmt.Sprintf("seq %d repeats", h.seq)
	case h.seq < c.seq:
		return fmt.Sprintf("seq %d follows %d: out of order", h.seq, c.seq)
	case h.seq == c.seq+2:
		return fmt.Sprintf("seq %d follows %d: a record is missing", h.seq, c.seq)
	case h.seq > c.seq+2:
		return fmt.Sprintf("seq %d follows %d: %d records are missing", h.seq, c.seq, h.seq-c.seq-1)
	case h.prev != c.hash && path == c.file:
		return fmt.Sprintf("prev hash does not match line %d", c.line)
	case h.prev != c.hash:
		return fmt.Sprintf("prev hash does not match %s:%d", c.file, c.line)
	}
	return ""
}

func (c *chain) advance(path string, n int, line []byte, seq uint64) {
	c.started = true
	c.seq = seq
	c.hash = Hash(line)
	c.file, c.line = path, n
	c.res.Records++
	c.res.LastSeq, c.res.LastHash = seq, c.hash
}

// header is what verification needs of a record.
type header struct {
	seq  uint64
	prev string
}

// parseHeader decodes the fields every record must have and says what is wrong with
// them, or "".
func parseHeader(line []byte) (header, string) {
	var raw struct {
		V        *int       `json:"v"`
		Time     *time.Time `json:"time"`
		Seq      *uint64    `json:"seq"`
		Prev     *string    `json:"prev"`
		Decision *string    `json:"decision"`
	}
	if len(line) == 0 || line[0] != '{' {
		return header{}, "not a JSON object"
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return header{}, "not a valid record: " + err.Error()
	}
	switch {
	case raw.V == nil:
		return header{}, "no schema version (v)"
	case !knownVersions[*raw.V]:
		return header{}, fmt.Sprintf("unknown schema version %d", *raw.V)
	case raw.Seq == nil || *raw.Seq == 0:
		return header{}, "no seq"
	case raw.Prev == nil || !isHash(*raw.Prev):
		return header{}, "prev is not a hex SHA-256"
	case raw.Time == nil:
		return header{}, "no time"
	case raw.Decision == nil || *raw.Decision == "":
		return header{}, "no decision"
	}
	return header{seq: *raw.Seq, prev: *raw.Prev}, ""
}

// isHash tells whether s is 64 lowercase hex digits, as Hash writes them.
func isHash(s string) bool {
	if len(s) != len(ZeroHash) {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// lineReader reads lines of any length up to maxLineSize.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its newline, and whether a newline ended it; the
// line is valid until the next call. It returns io.EOF when no bytes remain. A line longer
// than maxLineSize is read to its end and reported as errLineTooLong.
func (lr *lineReader) next() ([]byte, bool, error) {
	lr.buf = lr.buf[:0]
	tooLong := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if !tooLong && len(lr.buf)+len(chunk) > maxLineSize+1 {
			tooLong, lr.buf = true, lr.buf[:0]
		}
		if !tooLong {
			lr.buf = append(lr.buf, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case tooLong && (err == nil || errors.Is(err, io.EOF)):
			return nil, err == nil, errLineTooLong
		case err == nil:
			return lr.buf[:len(lr.buf)-1], true, nil
		case errors.Is(err, io.EOF) && len(lr.buf) > 0:
			return lr.buf, false, nil
		}
		return nil, false, err
	}
}

// more tells whether any bytes follow the last line read.
func (lr *lineReader) more() bool {
	_, err := lr.r.Peek(1)
	return err == nil
}
