package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Journal is an append-only log of entries that must survive a crash until they are
// marked done: the durable intake's notifications. An append returns once it is on
// disk, and appends made at the same time share one fsync, so durability costs one
// sequential write and one fsync per group of notifications. Done marks are written
// without waiting: losing one in a crash only replays its entry, which callers must
// tolerate. Segments whose entries are all done are deleted.
type Journal struct {
	dir     string
	maxSize int64
	window  time.Duration

	mu      sync.Mutex
	f       *os.File
	seg     uint64 // number of the segment f writes
	size    int64
	written uint64            // appends written so far
	live    map[string]uint64 // key of each entry not done → its segment
	counts  map[uint64]int    // segment → its entries not done
	err     error
	closed  bool

	syncMu   sync.Mutex
	syncCond *sync.Cond
	synced   uint64
	syncing  bool
}

// JournalEntry is an entry found at open that was never marked done.
type JournalEntry struct {
	Key   string
	Value []byte
}

// Record kinds of the journal.
const (
	journalAppend byte = 'A'
	journalDone   byte = 'D'
)

// journalHeader is a record's kind, length and CRC-32C of its body.
const journalHeader = 1 + 4 + 4

// maxJournalRecord bounds a record, so a corrupt length cannot make Open allocate much.
const maxJournalRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// JournalOptions tune a Journal. The zero value is ready to use.
type JournalOptions struct {
	// MaxSegmentSize is the size a segment may reach before the next one starts.
	// Default 64 MiB.
	MaxSegmentSize int64
	// GroupWindow is how long an fsync waits for other appends to join it. Default 1ms:
	// under load one fsync then covers many notifications, at the cost of a millisecond
	// for each.
	GroupWindow time.Duration
}

// OpenJournal opens the journal in dir and returns the entries not done, in the order
// they were appended. A record torn by a crash at the end of the last segment was never
// acknowledged: it is cut off.
func OpenJournal(dir string, opts JournalOptions) (*Journal, []JournalEntry, error) {
	maxSize := opts.MaxSegmentSize
	if maxSize <= 0 {
		maxSize = 64 << 20
	}
	if opts.GroupWindow == 0 {
		opts.GroupWindow = time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("opening journal: %w", err)
	}
	j := &Journal{dir: dir, maxSize: maxSize, window: opts.GroupWindow, live: map[string]uint64{},
		counts: map[uint64]int{}}
	j.syncCond = sync.NewCond(&j.syncMu)
	pending, err := j.replay()
	if err != nil {
		return nil, nil, err
	}
	if err := j.openSegment(j.seg + 1); err != nil {
		return nil, nil, err
	}
	j.dropDoneSegments()
	return j, pending, nil
}

func (j *Journal) segmentPath(n uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("journal-%020d.log", n))
}

func (j *Journal) segments() ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "journal-*.log"))
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, name := range names {
		var n uint64
		base := strings.TrimSuffix(filepath.Base(name), ".log")
		if _, err := fmt.Sscanf(base, "journal-%d", &n); err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}

// replay reads every segment and rebuilds what is not done.
func (j *Journal) replay() ([]JournalEntry, error) {
	segs, err := j.segments()
	if err != nil {
		return nil, fmt.Errorf("listing journal segments: %w", err)
	}
	values := map[string][]byte{}
	var order []string
	for i, n := range segs {
		j.seg = n
		j.counts[n] = 0
		last := i == len(segs)-1
		err := j.replaySegment(n, last, func(kind byte, key string, value []byte) {
			switch kind {
			case journalAppend:
				if _, dup := j.live[key]; !dup {
					order = append(order, key)
				}
				j.live[key] = n
				j.counts[n]++
				values[key] = value
			case journalDone:
				if seg, ok := j.live[key]; ok {
					delete(j.live, key)
					j.counts[seg]--
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	var pending []JournalEntry
	for _, k := range order {
		if _, ok := j.live[k]; ok {
			pending = append(pending, JournalEntry{Key: k, Value: values[k]})
		}
	}
	return pending, nil
}

func (j *Journal) replaySegment(n uint64, last bool, fn func(kind byte, key string, value []byte)) error {
	path := j.segmentPath(n)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening journal segment: %w", err)
	}
	defer f.Close()

	r := bufio.NewReaderSize(f, 256<<10)
	var good int64
	for {
		kind, body, err := readJournalRecord(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if !last {
				return fmt.Errorf("reading %s at byte %d: %w", path, good, err)
			}
			// a torn tail: the append it held never returned, so nobody was told it was kept
			return os.Truncate(path, good)
		}
		good += int64(journalHeader + len(body))
		if err := decodeJournalBody(kind, body, fn); err != nil {
			return fmt.Errorf("reading %s at byte %d: %w", path, good, err)
		}
	}
}

func readJournalRecord(r *bufio.Reader) (byte, []byte, error) {
	var h [journalHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, errors.New("torn record header")
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:5])
	if n > maxJournalRecord || (h[0] != journalAppend && h[0] != journalDone) {
		return 0, nil, errors.New("corrupt record header")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, errors.New("torn record")
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[5:9]) {
		return 0, nil, errors.New("record checksum mismatch")
	}
	return h[0], body, nil
}

// decodeJournalBody splits a body: an append holds one key and its value, a done mark
// holds keys.
func decodeJournalBody(kind byte, body []byte, fn func(byte, string, []byte)) error {
	for len(body) > 0 {
		if len(body) < 2 {
			return errors.New("short key length")
		}
		kl := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+kl {
			return errors.New("short key")
		}
		key := string(body[2 : 2+kl])
		body = body[2+kl:]
		if kind == journalAppend {
			fn(kind, key, body)
			return nil
		}
		fn(kind, key, nil)
	}
	return nil
}

func encodeJournalRecord(kind byte, body []byte) []byte {
	out := make([]byte, journalHeader, journalHeader+len(body))
	out[0] = kind
	binary.BigEndian.PutUint32(out[1:5], uint32(len(body)))
	binary.BigEndian.PutUint32(out[5:9], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

func appendKey(dst []byte, key string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	return append(dst, key...)
}

func (j *Journal) openSegment(n uint64) error {
	f, err := os.OpenFile(j.segmentPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening journal segment: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		_ = f.Close()
		return err
	}
	j.f, j.seg, j.size = f, n, 0
	if _, ok := j.counts[n]; !ok {
		j.counts[n] = 0
	}
	return nil
}

// Append writes value under key and returns once it is on disk.
func (j *Journal) Append(key string, value []byte) error {
	if len(key) > 0xffff {
		return errors.New("journal key too long")
	}
	body := appendKey(make([]byte, 0, 2+len(key)+len(value)), key)
	rec := encodeJournalRecord(journalAppend, append(body, value...))

	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	if err := j.write(rec); err != nil {
		j.mu.Unlock()
		return err
	}
	j.live[key] = j.seg
	j.counts[j.seg]++
	j.written++
	mine := j.written
	j.mu.Unlock()

	return j.syncThrough(mine)
}

// Done marks keys done. It does not wait for the disk.
func (j *Journal) Done(keys ...string) error {
	var body []byte
	for _, k := range keys {
		body = appendKey(body, k)
	}
	rec := encodeJournalRecord(journalDone, body)

	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	if err := j.write(rec); err != nil {
		return err
	}
	for _, k := range keys {
		if seg, ok := j.live[k]; ok {
			delete(j.live, k)
			j.counts[seg]--
		}
	}
	j.dropDoneSegments()
	return nil
}

// write appends rec to the active segment, rotating first when it is full. j.mu is held.
func (j *Journal) write(rec []byte) error {
	if j.size > 0 && j.size+int64(len(rec)) > j.maxSize {
		if err := j.rotate(); err != nil {
			return j.fail(err)
		}
	}
	n, err := j.f.Write(rec)
	j.size += int64(n)
	if err != nil {
		return j.fail(fmt.Errorf("writing journal: %w", err))
	}
	return nil
}

// rotate syncs and closes the active segment and starts the next. j.mu is held.
func (j *Journal) rotate() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing journal before rotating: %w", err)
	}
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("closing journal before rotating: %w", err)
	}
	return j.openSegment(j.seg + 1)
}

// dropDoneSegments deletes the oldest segments while all their entries are done. Only
// a prefix goes, so a done mark is never lost while the entry it marks is still kept.
// j.mu is held.
func (j *Journal) dropDoneSegments() {
	segs := make([]uint64, 0, len(j.counts))
	for n := range j.counts {
		segs = append(segs, n)
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a] < segs[b] })
	for _, n := range segs {
		if n == j.seg || j.counts[n] > 0 {
			return
		}
		if err := os.Remove(j.segmentPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		delete(j.counts, n)
	}
}

func (j *Journal) usable() error {
	if j.closed {
		return ErrClosed
	}
	return j.err
}

func (j *Journal) fail(err error) error {
	if j.err == nil {
		j.err = err
	}
	return j.err
}

// syncThrough returns once append number n is on disk; one caller fsyncs for all who
// wrote before its fsync began, the others wait for it.
func (j *Journal) syncThrough(n uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	for j.synced < n {
		if j.syncing {
			j.syncCond.Wait()
			continue
		}
		j.syncing = true
		j.syncMu.Unlock()
		target, err := j.syncOnce()
		j.syncMu.Lock()
		j.syncing = false
		j.syncCond.Broadcast()
		if err != nil {
			return err
		}
		j.synced = max(j.synced, target)
	}
	return nil
}

func (j *Journal) syncOnce() (uint64, error) {
	// let appends made meanwhile join this fsync
	time.Sleep(j.window)
	j.mu.Lock()
	f, target, err := j.f, j.written, j.err
	j.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.f != f {
			// rotated meanwhile; rotation synced the old segment before closing it
			return target, nil
		}
		return 0, j.fail(fmt.Errorf("syncing journal: %w", err))
	}
	return target, nil
}

// Close syncs and closes the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return errors.Join(j.f.Sync(), j.f.Close())
}

// Pending counts the entries not done.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
