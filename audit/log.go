package audit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultMaxFileSize is the size at which audit.jsonl is rotated unless Options says.
const DefaultMaxFileSize = 64 << 20

// asyncSyncInterval is the longest a record written by AppendAsync waits for an fsync
// when no Append comes to share one.
const asyncSyncInterval = 200 * time.Millisecond

// Log keys used by the audit log.
const (
	keyFile     = "file"
	keySeq      = "seq"
	keyHash     = "hash"
	keyBytes    = "bytes"
	keyTornFile = "torn_file"
	keyProblem  = "problem"
)

// ErrClosed is returned by appends to a closed Log.
var ErrClosed = errors.New("audit log closed")

// Options tune a Log. The zero value is ready to use.
type Options struct {
	// MaxFileSize is the size audit.jsonl may reach before it is rotated. Default
	// DefaultMaxFileSize (64 MiB). A record larger than it is still written, alone in
	// its file.
	MaxFileSize int64
	// Logger receives rotations, recoveries and the failure that stops the log.
	// Default: none.
	Logger *zap.Logger
	// Now stamps records. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Log appends records to the audit files of one directory. Its methods are safe for
// concurrent use. After a write or an fsync fails, every later append returns that
// failure: what reached the disk is unknown until the log is opened again.
type Log struct {
	dir    string
	opts   Options
	logger *zap.Logger
	lock   *os.File

	mu        sync.Mutex
	f         *os.File
	size      int64  // bytes in f
	fileFirst uint64 // seq of f's first record, or of the next record while f is empty
	seq       uint64 // seq of the last record written
	prev      string // hash of the last line written
	err       error  // the failure that stopped the log
	closed    bool

	syncMu   sync.Mutex
	syncCond *sync.Cond
	synced   uint64 // seq of the last record known to be on disk
	syncing  bool   // a leader is in an fsync
	syncs    atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

// Open opens the log in dir, creating dir and dir/audit.jsonl as needed, and takes the
// directory's lock so that no other Log appends to it. It recovers the seq and hash of
// the last record; a torn final line left by a crash is copied to dir/audit.torn-<unix
// nanos>, removed from audit.jsonl, and recorded with the decision "recovered". Damage
// anywhere before the final line is not a crash's doing: Open refuses it, naming the line.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir: dir, opts: opts, logger: opts.Logger, lock: lock,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	l.syncCond = sync.NewCond(&l.syncMu)
	torn, err := l.resume()
	if err != nil {
		_ = lock.Close() // the error that matters is resume's
		return nil, err
	}
	l.synced = l.seq

	go l.syncLoop()
	if torn == nil {
		return l, nil
	}
	if err := l.Append(torn.record()); err != nil {
		_ = l.Close() // the error that matters is Append's
		return nil, err
	}
	return l, nil
}

// Append writes r and returns once it is on disk. Appends made at the same time share
// fsyncs. It sets V, Time, Seq and Prev, redacts Request and Result, and refuses an
// unknown decision.
func (l *Log) Append(r Record) error {
	seq, err := l.write(&r)
	if err != nil {
		return err
	}
	return l.syncThrough(seq)
}

// AppendAsync writes r like Append but returns without waiting for the fsync, which the
// next Append, or a background fsync within 200 ms, makes. A crash before then loses r:
// use it for records that are many and individually cheap, such as receipts.
func (l *Log) AppendAsync(r Record) error {
	_, err := l.write(&r)
	return err
}

// Close waits for the records written so far to reach the disk, then closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	seq := l.seq
	l.mu.Unlock()

	close(l.stop)
	<-l.done
	syncErr := l.syncThrough(seq)

	l.mu.Lock()
	var closeErr error
	if l.f != nil {
		closeErr = l.f.Close()
		l.f = nil
	}
	l.mu.Unlock()
	return errors.Join(syncErr, closeErr, l.lock.Close())
}

func (l *Log) path() string { return filepath.Join(l.dir, CurrentFile) }

// write appends r's line to the file and returns its seq.
func (l *Log) write(r *Record) (uint64, error) {
	body, err := encodeBody(r)
	if err != nil {
		return 0, err
	}
	if len(body)+256 > maxLineSize {
		return 0, fmt.Errorf("writing audit record: %d bytes are more than a line holds", len(body))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	if l.seq == math.MaxUint64 {
		return 0, errors.New("writing audit record: seq exhausted")
	}
	line := appendLine(make([]byte, 0, len(body)+160), l.opts.Now(), l.seq+1, l.prev, body)
	if l.size > 0 && l.size+int64(len(line)) > l.opts.MaxFileSize {
		if err := l.rotate(); err != nil {
			return 0, l.fail(err)
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		return 0, l.fail(fmt.Errorf("writing %s: %w", l.path(), err))
	}
	l.seq++
	l.prev = Hash(line[:len(line)-1])
	return l.seq, nil
}

// usable says why the log takes no more records, or nil. l.mu must be held.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// fail stops the log with err, keeping the first failure. l.mu must be held.
func (l *Log) fail(err error) error {
	if l.err == nil {
		l.err = err
		l.logger.Error("audit log stopped; appends fail until it is opened again", zap.Error(err))
	}
	return l.err
}

// syncThrough returns once the record seq is on disk. The first caller to find no fsync
// under way becomes the leader and syncs every record written before its fsync starts;
// the others wait for it, and those it did not cover elect the next leader.
func (l *Log) syncThrough(seq uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	for l.synced < seq {
		if l.syncing {
			l.syncCond.Wait()
			continue
		}
		l.syncing = true
		l.syncMu.Unlock()
		target, err := l.syncOnce()
		l.syncMu.Lock()
		l.syncing = false
		l.syncCond.Broadcast()
		if err != nil {
			return err
		}
		l.synced = max(l.synced, target)
	}
	return nil
}

// syncOnce fsyncs the file and returns the seq of the last record the fsync covers.
func (l *Log) syncOnce() (uint64, error) {
	l.mu.Lock()
	f, target, err := l.f, l.seq, l.err
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if f == nil {
		return 0, ErrClosed
	}
	syncErr := f.Sync()
	l.syncs.Add(1)
	if syncErr == nil {
		return target, nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	if l.f != f && errors.Is(syncErr, os.ErrClosed) {
		// rotated or closed meanwhile, and both fsync the file before closing it
		return target, nil
	}
	return 0, l.fail(fmt.Errorf("syncing %s: %w", l.path(), syncErr))
}

// syncLoop fsyncs what AppendAsync wrote and no Append has synced yet.
func (l *Log) syncLoop() {
	defer close(l.done)
	t := time.NewTicker(asyncSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		seq := l.seq
		l.mu.Unlock()
		l.syncMu.Lock()
		pending := l.synced < seq
		l.syncMu.Unlock()
		if pending {
			_ = l.syncThrough(seq) // a failure stops the log; the next append returns it
		}
	}
}

// rotate closes audit.jsonl, durably, under the name of its first seq, and starts a new
// one that continues the chain. l.mu must be held.
func (l *Log) rotate() error {
	old := l.f
	if err := old.Sync(); err != nil {
		return fmt.Errorf("syncing %s before rotating it: %w", l.path(), err)
	}
	l.f = nil
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing %s before rotating it: %w", l.path(), err)
	}
	rotated := filepath.Join(l.dir, rotatedName(l.fileFirst))
	if err := os.Rename(l.path(), rotated); err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	f, err := os.OpenFile(l.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}
	l.f, l.size, l.fileFirst = f, 0, l.seq+1
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("rotating audit log: %w", err)
	}

	l.logger.Info("audit log rotated", zap.String(keyFile, rotated), zap.Uint64(keySeq, l.seq),
		zap.String(keyHash, l.prev))
	return nil
}

// syncDir makes the creations and renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()

	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
